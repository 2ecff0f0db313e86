"""Nothing served that was not computed for this request: identities by content, the quick cases, through the real
command or the real loader on real files: a model's id through the links in its folder, a judge swapped before a
worker loads it, ids from content, the user's files left alone, every bad row a rejects row. The cases that need
finished runs are tests/faults/test_handover.py."""
from __future__ import annotations

import csv
import json
import os
import shutil

import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, head, jm, manifest_of, write_jsonl

from judgemine.schemas.digests import model_id
from judgemine.transforms.common.progress import StageWork


def _judge_counts(out: str) -> dict:
    return manifest_of(out)["stages"]["judge"]["counts"]


def _pairs(tmp_path, name: str, rows: list[dict]) -> str:
    return write_jsonl(str(tmp_path / name), rows)


def test_the_model_id_follows_links_inside_the_folder(tmp_path, tiny_judge):
    judge, pooling = tmp_path / "judge", tmp_path / "pooling"
    shutil.copytree(tiny_judge, judge)
    pooling.mkdir()
    (pooling / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    os.symlink(pooling, judge / "1_Pooling")
    before = model_id(str(judge), "float32")
    (pooling / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert model_id(str(judge), "float32") != before


def test_a_judge_folder_swapped_before_a_worker_loads_it_fails_the_stage_naming_it(tmp_path, tiny_judge):
    """The stage's identity is taken when it starts; a worker loading another model (the link retargeted) stops
    with one line naming the folder, never scoring under the first model's keys."""
    from judgemine.transforms.judge.backends.transformers import TransformersOptions
    from judgemine.transforms.judge.base import JudgeModel, JudgeSpec
    from judgemine.transforms.judge.handler import JudgeChanged, JudgeHandler
    other = tmp_path / "other"
    shutil.copytree(tiny_judge, other)
    (other / "generation_config.json").write_text('{"note": "another checkpoint"}')
    link = tmp_path / "judge"
    os.symlink(tiny_judge, link)
    from judgemine.transforms.judge.backends.transformers import TransformersJudge
    spec = JudgeSpec(TransformersJudge, JudgeModel(str(link), device="cpu"), TransformersOptions()).resolved()
    assert spec.identity == model_id(str(link), "float32")
    handler = JudgeHandler(spec, str(tmp_path / "cache"), 60.0, StageWork())
    assert handler.load_model() is not None  # unchanged: loads
    os.remove(link)
    os.symlink(other, link)
    with pytest.raises(JudgeChanged, match=f"the judge {link} changed before loading"):
        handler.load_model()


def _ids(out: str) -> list[str]:
    return sorted(pq.read_table(os.path.join(out, "stages", "ingest", "queries")).column("query_id").to_pylist())


@pytest.mark.slow
def test_assigned_ids_are_unique_across_files_and_the_same_in_any_format(tmp_path):
    rows = head(os.path.join(SAMPLE, "paraphrases.jsonl"), 6)
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    same_names = [_pairs(tmp_path, "x/train.jsonl", rows[:3]), _pairs(tmp_path, "y/train.jsonl", rows[3:])]
    dotted = [_pairs(tmp_path, "squad.train.jsonl", rows[:3]), _pairs(tmp_path, "squad.dev.jsonl", rows[3:])]
    with open(tmp_path / "pairs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["query_text", "pos_text"])
        writer.writerows([[r["query_text"], r["pos_text"]] for r in rows])
    found = {}
    for name, files in [("names", same_names), ("dots", dotted), ("csv", [str(tmp_path / "pairs.csv")]),
                        ("again", [_pairs(tmp_path, "twice.jsonl", rows + rows[:1])])]:
        out = str(tmp_path / f"out-{name}")
        done = jm("ingest", "--output", out, *[a for p in files for a in ("--pairs", p)])
        assert done.returncode == 0, done.stderr
        found[name] = _ids(out)
    assert len(set(found["names"])) == 6 and found["names"] == found["dots"] == found["csv"]
    assert found["again"] == found["csv"]  # the same pair twice is one pair, read once
    record = json.load(open(os.path.join(str(tmp_path / "out-again"), "stages", "ingest", "stage.json")))
    assert (record["counts"]["repeated_pairs"], record["counts"]["rejected"]) == (1, 0)


def test_an_output_folder_judgemine_did_not_make_is_refused_untouched(tmp_path, tiny_judge):
    mine = tmp_path / "mine"
    for rel in ("report/notes.txt", "shards/mydata.txt", "rejects/keep.txt", "manifest.json"):
        (mine / rel).parent.mkdir(parents=True, exist_ok=True)
        (mine / rel).write_text("the user's own")
    before = sorted((p, open(os.path.join(d, p)).read()) for d, _, ps in os.walk(mine) for p in ps)
    pairs = _pairs(tmp_path, "p.jsonl", head(os.path.join(SAMPLE, "definitions.jsonl"), 8))
    done = jm("run", "--output", str(mine), "--pairs", pairs, "--judge-model", tiny_judge)
    assert done.returncode == 2 and "holds files judgemine did not write" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted((p, open(os.path.join(d, p)).read()) for d, _, ps in os.walk(mine) for p in ps) == before


def test_one_bad_row_of_any_kind_is_a_rejects_row_with_its_raw_text(tmp_path, tiny_judge):
    good = head(os.path.join(SAMPLE, "definitions.jsonl"), 6)
    deep = "[" * 100_000 + "]" * 100_000
    lines = [json.dumps(good[0]), deep, '{"query_text": "x", "pos_text": "y", "n": ' + "9" * 5000 + "}",
             json.dumps(good[1])]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    rows = [f'"{g["query_text"]}","{g["pos_text"]}"\n'.encode() for g in good[2:]]
    (tmp_path / "c.csv").write_bytes(b"query,positive\n" + rows[0] + rows[1] + b'"' + b"x" * 200_000 + b'",p\n'
                                     + b"q\xff,p\n" + rows[2] + rows[3])
    out = str(tmp_path / "out")
    args = ["--pairs", str(tmp_path / "p.jsonl"), "--pairs", str(tmp_path / "c.csv"), "--judge-model", tiny_judge]
    assert jm("plan", "--output", out, *args).returncode == 0
    done = jm("ingest", "--output", out, *args)
    assert done.returncode == 0, done.stderr
    rejects = pq.read_table(os.path.join(out, "stages", "ingest", "rejects")).to_pylist()
    by_reason = {r["reason"].split(":")[0]: r["row"] for r in rejects}
    assert sorted(by_reason) == ["invalid_unicode", "number_too_long", "text_too_long", "too_deep"]
    assert by_reason["too_deep"] == deep and "q" in by_reason["invalid_unicode"]
    assert len(by_reason["number_too_long"]) == len(lines[2]) and len(by_reason["text_too_long"]) > 200_000
    assert len(_ids(out)) == 6

