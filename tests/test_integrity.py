"""Integrity with real Beam runs in this process: hostile rows stay row-level, the image root is a boundary,
bad settings are refused, committed stages are verified, the run lock, leftovers removed. The kill tests at
every commit step run real processes: tests/faults/."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_args, write_jsonl

from judgemine.pipelines.cli.parser import main
from judgemine.schemas import CANDIDATES, QUERIES, SHARDS, list_parts, read_table
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.rejects import read_rejects

GOOD = [{"query_text": f"Question number {i}?", "pos_text": f"Answer number {i}."} for i in range(6)]


def _ingest(out: str, *args: str) -> tuple[list[dict], list[dict], dict]:
    assert main(["ingest", "--output", out, *args]) == 0
    d = RunLayout(out).stage("ingest").path
    queries = [r for p in list_parts(os.path.join(d, "queries")) for r in read_table(p, QUERIES).to_pylist()]
    rejects = [r for part in read_rejects(os.path.join(d, "rejects")) for r in part.to_pylist()]
    return queries, rejects, json.load(open(os.path.join(d, "stage.json")))["counts"]


@pytest.mark.slow
def test_hostile_rows_become_rejects_with_their_raw_text(tmp_path):
    lines = [b"\xef\xbb\xbf" + json.dumps(GOOD[0]).encode(),  # a byte-order mark before the first row
             b'{"query_text": "lone \\ud800 surrogate", "pos_text": "x"}',
             b'{"query_text": "no closing brace", "pos_text": "x"',
             b'{"query_text": "caf\xe9 in latin-1", "pos_text": "x"}',
             json.dumps({"query_text": "q" * 2_000_000, "pos_text": "a long one"}).encode(),
             json.dumps(GOOD[1], ensure_ascii=False).encode() + b"\r",  # CRLF line end
             json.dumps({"query_text": "a line\u2028separator inside", "pos_text": "x"}, ensure_ascii=False).encode(),
             *[json.dumps(g).encode() for g in GOOD[2:]]]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    queries, rejects, counts = _ingest(str(tmp_path / "out"), "--pairs", str(path))
    assert [q["query_text"] for q in queries] == [GOOD[0]["query_text"], GOOD[1]["query_text"],
                                                  "a line\u2028separator inside"] + [g["query_text"] for g in GOOD[2:]]
    reasons = {r["line"]: r["reason"].split(":")[0] for r in rejects}
    assert reasons == {2: "invalid_unicode", 3: "malformed_json", 4: "invalid_utf8", 5: "text_too_long"}
    raw = {r["line"]: r["row"] for r in rejects}
    assert all(raw.values())  # never null
    assert "\\ud800" in raw[2] and raw[3] == lines[2].decode() and "caf\\xe9" in raw[4]
    assert counts["pairs_in"] == len(lines) == len(queries) + len(rejects)


@pytest.mark.slow
def test_corpus_rows_are_accounted_and_duplicate_ids_reported(tmp_path):
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), GOOD)
    corpus = write_jsonl(str(tmp_path / "corpus.jsonl"), [
        {"id": "d1", "text": "A document."}, {"id": "d1", "text": "Another document under the same id."},
        {"id": "d2", "text": "A document."},  # same content, other id: one candidate
        {"id": "d3"}, {"id": "d1", "text": "a  DOCUMENT."}])  # same content as d1's: kept (merged)
    _, rejects, counts = _ingest(str(tmp_path / "out"), "--pairs", pairs, "--corpus", corpus)
    assert sorted((r["line"], r["reason"].split(":")[0]) for r in rejects) == [(2, "duplicate_corpus_id"),
                                                                              (4, "missing_field")]
    assert (counts["corpus_in"], counts["corpus_kept"], counts["corpus_rejected"]) == (5, 3, 2)
    assert counts["rejected_pairs"] == 0 and counts["pairs_in"] == len(GOOD)
    cands = [r for p in list_parts(os.path.join(RunLayout(str(tmp_path / "out")).stage("ingest").path, "candidates"))
             for r in read_table(p, CANDIDATES).to_pylist()]
    assert sum(c["text"].lower().startswith("a document") for c in cands) == 1


def _png(path: str) -> str:
    from PIL import Image
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    return path


@pytest.mark.slow
def test_the_image_root_is_a_boundary(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    _png(str(root / "sub" / "in.png"))
    secret = _png(str(outside / "secret.png"))
    os.symlink(secret, root / "link.png")
    os.symlink(outside, root / "linked_dir")
    os.mkfifo(root / "fifo.png")
    with open(root / "big.png", "wb") as f:
        f.write(open(root / "sub" / "in.png", "rb").read() + b"\0" * 5000)
    images = {"sub/in.png": None, f"{root}/sub/in.png": None, f"file://{root}/sub/in.png": None,
              secret: "image_outside_root", "link.png": "image_outside_root",
              "linked_dir/secret.png": "image_outside_root", str(outside / "absent.png"): "image_outside_root",
              "/dev/zero": "image_outside_root", "fifo.png": "not_a_regular_file", "big.png": "image_too_large",
              "s3://bucket/sub/in.png": "image_outside_root"}
    rows = [{"query_text": f"q{i}", "query_image": img, "pos_text": f"p{i}"} for i, img in enumerate(images)]
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), rows)
    queries, rejects, _ = _ingest(str(tmp_path / "out"), "--pairs", pairs, "--image-root", str(root),
                                  "--max-image-bytes", "4096", "--max-reject-share", "1")  # mostly refused paths
    got = {**{q["query_image"]: None for q in queries},
           **{json.loads(r["row"])["query_image"]: r["reason"].split(":")[0] for r in rejects}}
    assert got == images


@pytest.mark.slow
def test_without_a_root_special_files_are_refused_unread(tmp_path):
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), [{"query_text": "q", "query_image": "/dev/zero",
                                                         "pos_text": "p"}, *GOOD])
    queries, rejects, _ = _ingest(str(tmp_path / "out"), "--pairs", pairs)
    assert len(queries) == len(GOOD) and [r["reason"] for r in rejects] == ["not_a_regular_file: /dev/zero"]


@pytest.mark.parametrize("flag,value,message", [
    ("--beta", "nan", "beta=nan (must be a finite number)"), ("--beta", "-1", "beta=-1.0 (must be >= 0)"),
    ("--top-k", "0", "top_k=0 (must be > 0)"), ("--vllm-gpu-memory-utilization", "1.5", "in (0, 1]"),
    ("--max-text-chars", "-5", "max_text_chars=-5 (must be > 0)")])
def test_bad_values_are_refused_with_exit_2(tmp_path, capsys, flag, value, message):
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), GOOD)
    assert main(["run", "--output", str(tmp_path / "out"), "--pairs", pairs, flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not os.path.exists(tmp_path / "out")


def test_a_wrong_type_in_a_config_is_refused_with_exit_2(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"pairs: [{write_jsonl(str(tmp_path / 'pairs.jsonl'), GOOD)}]\ntop_k: ten\n")
    assert main(["run", "--config", str(config), "--output", str(tmp_path / "out")]) == 2
    assert "top_k='ten' (expected an integer)" in capsys.readouterr().err


def test_a_damaged_stage_is_reported_and_rebuilt(e2e_run, small_pairs, tiny_judge, tmp_path, capsys):
    out = str(tmp_path / "run")
    shutil.copytree(e2e_run, out)
    shard = sorted(list_parts(os.path.join(out, "shards")))[1]
    original = open(shard, "rb").read()
    os.remove(shard)
    assert main(["status", *run_args(out, small_pairs, tiny_judge)]) == 3
    assert "mine      damaged" in capsys.readouterr().out
    assert main(["export", "--output", out, "--to", str(tmp_path / "x.json")]) == 2  # readers refuse it too
    assert "is damaged" in capsys.readouterr().err and not os.path.exists(tmp_path / "x.json")
    assert main(["run", *run_args(out, small_pairs, tiny_judge)]) == 0
    assert open(shard, "rb").read() == original
    assert main(["status", *run_args(out, small_pairs, tiny_judge)]) == 0


HOLD = """
import sys, time
from judgemine.pipelines.run.lock import run_lock
with run_lock(sys.argv[1], "run"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_second_run_is_refused_while_the_first_holds_the_output_then_takes_over(tmp_path, capsys):
    out = str(tmp_path / "out")
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), GOOD)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, out], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.time()
        assert main(["ingest", "--output", out, "--pairs", pairs]) == 4
        assert time.time() - started < 5
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0] and "in use by another judgemine run" in err[0]
        assert not os.path.exists(RunLayout(out).stage("ingest").path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["ingest", "--output", out, "--pairs", pairs]) == 0  # a dead holder's lock is taken over


@pytest.mark.slow
def test_leftovers_of_killed_runs_are_removed(tmp_path):
    out = tmp_path / "out"
    left = [out / "shards.tmp-4242", out / "stages" / "judge.tmp-77", out / "stages" / "mine.old-9",
            out / "manifest.json.tmp-31"]
    for p in left[:3]:
        (p / "x").mkdir(parents=True)
    left[3].write_text("{")
    (out / ".judgemine-run").write_text("{}")  # the killed run's folder is judgemine's: its leftovers go
    _ingest(str(out), "--pairs", write_jsonl(str(tmp_path / "pairs.jsonl"), GOOD))
    assert not any(p.exists() for p in left)


def test_an_output_that_is_a_file_is_a_user_error(tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("not a directory")
    assert main(["ingest", "--output", str(out), "--pairs", write_jsonl(str(tmp_path / "p.jsonl"), GOOD)]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize("packing", ["prefix", "none"])
def test_a_prompt_longer_than_the_judge_context_is_refused_not_a_crash(tiny_judge, packing):
    import numpy as np

    from judgemine.transforms.common.sides import Side
    from judgemine.transforms.judge.backends.transformers import TransformersJudge, TransformersOptions
    from judgemine.transforms.judge.base import JudgeModel
    judge = TransformersJudge(JudgeModel(tiny_judge), TransformersOptions(judge_packing=packing))
    long = Side("word " * 3000)  # under the ingest limit, over the tiny judge's 2048 positions
    scores = judge.score([Side("q")] * 3, [Side("an answer"), long, Side("another answer")])
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    alone = judge.score([Side("q")] * 2, [Side("an answer"), Side("another answer")])
    assert np.abs(scores[[0, 2]] - alone).max() < 1e-5


def test_a_run_rejects_the_query_whose_positive_does_not_fit_the_judge(tmp_path, tiny_judge):
    rows = GOOD + [{"query_id": "long", "query_text": "A query", "pos_text": "word " * 3000}]
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), rows)
    out = str(tmp_path / "out")
    assert main(["run", "--output", out, "--pairs", pairs, "--judge-model", tiny_judge, "--top-k", "6",
                 "--num-negatives", "2"]) == 0
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["accounting"]["balanced"] and manifest["rejects_by_reason"] == {"mine": {"prompt_too_long": 1}}
    judge = manifest["stages"]["judge"]["counts"]
    assert judge["pairs_too_long"] == 1 + len(GOOD) == 1 + manifest["stages"]["mine"]["counts"]["candidates_too_long"]
    shards = [r for p in list_parts(os.path.join(out, "shards")) for r in read_table(p, SHARDS).to_pylist()]
    assert len(shards) == len(GOOD) and all("word word" not in t for r in shards for t in r["neg_texts"])
