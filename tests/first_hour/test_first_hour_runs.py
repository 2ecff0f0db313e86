"""`make test-first-hour`: a new user's first hour in real processes, most of them whole runs: their own data in
the layouts and formats they have is mined (a CSV with the field flags, a triplet file read as its distinct pairs),
a file that cannot be mined stops after ingest in one message with exit 2, a run that fails inside a stage prints
one line, plan, run and export name the judge and say when it is a random-weight demo model, and `make demo`
prints one screen."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pyarrow.parquet as pq
from conftest import ROOT, manifest_of, write_jsonl

from judgemine.pipelines.cli.parser import main
from judgemine.pipelines.settings import Settings
from judgemine.transforms.common.model_kinds import folder_kind
from judgemine.transforms.ingest.layouts import LAYOUTS
from judgemine.transforms.ingest.readers import assigned_query_id

JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")
PAIRS = [("What is the capital of Peru?", "Lima is the capital of Peru."),
         ("What is the capital of Chile?", "Santiago is the capital of Chile."),
         ("Define the word: vast", "Of very great extent or quantity."),
         ("Which planet is closest to the sun?", "Mercury orbits closest to the sun.")]


def _judgemine(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([JUDGEMINE, *args], capture_output=True, text=True, timeout=300)
    return done, time.monotonic() - started


def _shard_rows(out: str) -> list[dict]:
    return [r for name in sorted(os.listdir(os.path.join(out, "shards")))
            for r in pq.read_table(os.path.join(out, "shards", name)).to_pylist()]


def test_a_newcomers_csv_st_and_flag_files_are_mined(tmp_path, tiny_judge):
    csv = tmp_path / "mine.csv"
    csv.write_text("query,positive\n" + "".join(f'"{q}","{p}"\n' for q, p in PAIRS), encoding="utf-8")
    st = write_jsonl(str(tmp_path / "st.jsonl"), [{"anchor": q, "positive": p} for q, p in PAIRS])
    flag = write_jsonl(str(tmp_path / "flag.jsonl"), [{"query": PAIRS[0][0], "pos": [p for _, p in PAIRS[:2]]},
                                                      {"query": PAIRS[2][0], "pos": [PAIRS[2][1]]}])
    for path, rows in [(str(csv), 4), (st, 4), (flag, 3)]:
        out = str(tmp_path / ("out-" + os.path.basename(path)))
        done, _ = _judgemine("run", "--pairs", path, "--output", out, "--judge-model", tiny_judge)
        assert done.returncode == 0, done.stderr
        shards = _shard_rows(out)
        assert len(shards) == rows and {r["query_text"] for r in shards} >= {PAIRS[0][0], PAIRS[2][0]}
        judge = json.loads(open(os.path.join(out, "stages", "judge", "stage.json"), encoding="utf-8").read())["counts"]
        assert judge["pairs"] == judge["pairs_judged"] + judge["pairs_cached"] + judge["pairs_repeated"] > 0
    assert judge["pairs_repeated"] >= 1  # the flag file's query has two positives: a pair repeated, judged once
    ids = sorted(r["query_id"] for r in _shard_rows(str(tmp_path / "out-flag.jsonl")))
    assert ids == sorted(assigned_query_id({"query_text": q, "query_image": "", "pos_text": p, "pos_image": ""})
                         for q, p in [PAIRS[0], (PAIRS[0][0], PAIRS[1][1]), PAIRS[2]])


def test_a_file_with_every_row_rejected_stops_after_ingest_with_exit_2(tmp_path, tiny_judge):
    bad = write_jsonl(str(tmp_path / "wrong.jsonl"), [{"question": q, "answer": p} for q, p in PAIRS])
    good = write_jsonl(str(tmp_path / "good.jsonl"), [{"query_text": q, "pos_text": p} for q, p in PAIRS])
    out = str(tmp_path / "out")
    done, seconds = _judgemine("run", "--pairs", good, "--pairs", bad, "--output", out, "--judge-model", tiny_judge)
    assert done.returncode == 2 and seconds < 30, done.stderr
    message = [line for line in done.stderr.splitlines() if not line[:4].isdigit()]
    assert message[0] == f"judgemine: every row of {bad} was rejected (4 rows)"
    assert message[1] == "  4 x unknown_layout: fields answer, question"
    assert any(LAYOUTS["sentence-transformers"].example in line for line in message)
    assert "Traceback" not in done.stderr and not os.path.exists(os.path.join(out, "stages", "embed"))
    assert os.listdir(os.path.join(out, "stages", "ingest", "rejects"))
    again, _ = _judgemine("run", "--pairs", good, "--pairs", bad, "--output", out, "--judge-model", tiny_judge)
    assert again.returncode == 2 and "ingest: up to date, skipped" in again.stderr  # a rerun stops there too
    plan, _ = _judgemine("plan", "--pairs", good, "--pairs", bad, "--output", out, "--judge-model", tiny_judge)
    assert plan.returncode == 2 and plan.stderr.splitlines()[0] == message[0]


def test_a_share_of_rejects_over_the_setting_stops_and_1_lets_it_through(tmp_path, tiny_judge):
    rows = [{"query_text": q, "pos_text": p} for q, p in PAIRS] + [{"query_text": q} for q, _ in PAIRS[:3]]
    pairs = write_jsonl(str(tmp_path / "mixed.jsonl"), rows)
    args = ["--pairs", pairs, "--output", str(tmp_path / "out"), "--judge-model", tiny_judge]
    plan, _ = _judgemine("plan", *args, "--max-reject-share", "0.4")
    assert plan.returncode == 2, plan.stderr
    assert plan.stderr.splitlines()[:2] == [
        "judgemine: 3 of 7 rows (43%) were rejected, over --max-reject-share 0.4", "  3 x missing_field: pos_text"]
    assert _judgemine("plan", *args)[0].returncode == 0  # the default, 0.5
    assert main(["run", *args, "--max-reject-share", "1"]) == 0


def test_checks_before_work_refuse_a_wrong_device_or_model_kind_in_one_line(tmp_path, tiny_judge, small_pairs,
                                                                              capsys):
    import torch
    minilm = Settings().resolved_embed_model
    assert folder_kind(minilm)[0] == "encoder" and folder_kind(tiny_judge)[0] == "chat"
    cases = [(["--embed-model", tiny_judge], f"judgemine: --embed-model {tiny_judge} is a chat model"),
             (["--judge-model", minilm], f"judgemine: --judge-model {minilm} is a text encoder"),
             (["--judge-backend", "cross-encoder"], f"judgemine: --judge-model {tiny_judge} is a chat model")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "judgemine: --device cuda: this torch"))
        cases.append((["--search-device", "cuda"], "judgemine: --search-device cuda: this torch"))
    for extra, start in cases:
        out = str(tmp_path / "out")
        assert main(["run", "--output", out, "--judge-model", tiny_judge, "--pairs", small_pairs[0], *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(start) and "\n" not in err and "{" not in err, err
        assert not os.path.exists(os.path.join(out, "stages"))  # before any stage
        if "cuda" in extra:
            assert err.endswith(f"or pass {extra[0]} auto or cpu"), err


def test_a_run_that_fails_inside_a_stage_prints_one_line_and_no_traceback(tmp_path, tiny_judge, image_root):
    """Text queries whose positives are all images, under the default text-only embedder: nothing can be indexed.
    The failure is one line naming the cause (Beam's logged traceback only with --verbose)."""
    images = sorted(os.listdir(os.path.join(image_root, "images")))[:3]
    pairs = write_jsonl(str(tmp_path / "p.jsonl"), [{"query_text": f"Find picture {i}.", "pos_image": f"images/{n}"}
                                                    for i, n in enumerate(images)])
    args = ["run", "--pairs", pairs, "--image-root", image_root, "--output", str(tmp_path / "o"),
            "--judge-model", tiny_judge]
    done, _ = _judgemine(*args)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line[:4].isdigit()]
    assert lines == ["judgemine: run failed: the candidate pool is empty: no positive or corpus row was embedded "
                     "(see rejects/ and the embed stage's counts) [while running 'BuildIndexShards']"], done.stderr
    verbose, _ = _judgemine(*args, "--verbose")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_a_question_answer_csv_is_mined_with_the_mapping_flags_the_refusal_suggests(tmp_path, tiny_judge):
    csv = tmp_path / "qa.csv"
    csv.write_text("id,question,answer,topic\n" + "".join(f'{i},"{q}","{p}",geo\n' for i, (q, p) in enumerate(PAIRS)),
                   encoding="utf-8")
    out = str(tmp_path / "out")
    refused, _ = _judgemine("run", "--pairs", str(csv), "--output", out, "--judge-model", tiny_judge)
    assert refused.returncode == 2, refused.stderr
    assert ("or name your own fields: --query-field question --positive-field answer (in a config: query_field: "
            "question, positive_field: answer)") in refused.stderr
    half, _ = _judgemine("run", "--pairs", str(csv), "--output", out, "--query-field", "question")
    assert half.returncode == 2
    assert half.stderr.strip() == "judgemine: the field mapping needs --positive-field (or --positive-image-field) too"
    done, _ = _judgemine("run", "--pairs", str(csv), "--output", out, "--judge-model", tiny_judge, "--query-field",
                         "question", "--positive-field", "answer", "--id-field", "id", "--subset-field", "topic")
    assert done.returncode == 0, done.stderr
    rows = _shard_rows(out)
    assert sorted(r["query_text"] for r in rows) == sorted(q for q, _ in PAIRS)
    assert {r["dataset"] for r in rows} == {"geo"} and sorted(r["query_id"] for r in rows) == ["0", "1", "2", "3"]


def test_plan_run_and_export_name_the_judge_and_say_a_demo_one_means_nothing(tmp_path, tiny_judge):
    pairs = write_jsonl(str(tmp_path / "p.jsonl"), [{"query_text": q, "pos_text": p} for q, p in PAIRS])
    out = str(tmp_path / "out")
    warning = (f"WARNING: the judge {tiny_judge} is a random-weight demo model: its scores mean nothing (pass a real "
               "model folder with --judge-model, or --judge-backend similarity")
    plan, _ = _judgemine("plan", "--pairs", pairs, "--output", out, "--judge-model", tiny_judge)
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[0].startswith(f"models:             judge {tiny_judge} (transformers), embedder ")
    assert lines[1].startswith(warning), lines
    run, _ = _judgemine("run", "--pairs", pairs, "--output", out, "--judge-model", tiny_judge)
    assert run.returncode == 0, run.stderr
    first = [line.split(" judgemine ", 1)[1] for line in run.stderr.splitlines()[:2]]
    assert first[0].startswith(f"judge {tiny_judge} (transformers)") and first[1].startswith(warning), first
    export, _ = _judgemine("export", "--output", out, "--format", "sentence-transformers")
    assert export.returncode == 0 and export.stderr.strip().startswith(f"judgemine: {warning}"), export.stderr
    similarity, _ = _judgemine("plan", "--pairs", pairs, "--output", out, "--judge-backend", "similarity")
    assert "random-weight" not in similarity.stdout  # no judge model runs: nothing to warn of


def test_a_triplet_file_is_mined_as_its_distinct_pairs_and_its_export_plans_them_again(tmp_path):
    """A triplet file lists each (anchor, positive) once per negative: each pair is mined once, the repeats
    counted and warned, the unread negative column named once; an anchor with two positives is one query content
    whose negatives exclude both. The run's own triplet export, fed back to `plan`, plans its distinct pairs."""
    other = "Lima, on the Pacific coast, is the capital of Peru."
    rows = [{"anchor": q, "positive": p, "negative": n} for q, p in PAIRS for _, n in PAIRS if n != p]
    rows.append({"anchor": PAIRS[0][0], "positive": other, "negative": PAIRS[3][1]})
    triplets = write_jsonl(str(tmp_path / "triplets.jsonl"), rows)
    out = str(tmp_path / "out")
    settings = ["--output", out, "--judge-backend", "similarity"]
    plan, _ = _judgemine("plan", "--pairs", triplets, *settings)
    assert plan.returncode == 0, plan.stderr
    assert "queries:            5 (0 rows would be rejected, 8 repeat a pair read before and are read once)" \
        in plan.stdout, plan.stdout
    unread = ("fields not read (map one with --query-field and the other field flags): triplets.jsonl: negative "
              "(13 rows)")
    assert unread in plan.stdout
    run, _ = _judgemine("run", "--pairs", triplets, *settings)
    assert run.returncode == 0, run.stderr
    assert sum(unread in line for line in run.stderr.splitlines()) == 1
    assert "queries in:      13 (8 of them a pair read before)" in run.stdout and "accounted for:   yes" in run.stdout
    assert "WARNING: 8 of 13 pair rows repeat a (query, positive) pair read before: each pair was mined once" \
        in run.stdout
    accounting = manifest_of(out)["accounting"]
    assert (accounting["repeated_pairs"], accounting["rows_out"], accounting["balanced"]) == (8, 5, True)
    peru = [r for r in _shard_rows(out) if r["query_text"] == PAIRS[0][0]]
    assert sorted(r["pos_text"] for r in peru) == sorted([PAIRS[0][1], other])
    assert all(not {PAIRS[0][1], other} & set(r["neg_texts"]) for r in peru), peru
    export, _ = _judgemine("export", "--output", out, "--format", "sentence-transformers", "--layout", "triplet")
    assert export.returncode == 0, export.stderr
    fed_back = os.path.join(out, "export", "sentence-transformers.parquet")
    exported = pq.read_table(fed_back).to_pylist()
    distinct = {(r["anchor"], r["positive"]) for r in exported}
    assert len(exported) > len(distinct) == 5
    again, _ = _judgemine("plan", "--pairs", fed_back, "--output", str(tmp_path / "again"),
                          "--judge-backend", "similarity")
    assert again.returncode == 0, again.stderr
    assert (f"queries:            5 (0 rows would be rejected, {len(exported) - 5} repeat a pair read before and are "
            "read once)") in again.stdout


def test_the_demo_prints_only_what_a_user_needs(tmp_path):
    """`make demo` in one screen: building a tiny model prints its folder and nothing else (no tokenizer progress
    lines, no warning about a config it does not use), and the demo's run prints judgemine's own lines only: its
    log lines, the summary and the verdict, none blank."""
    for kind, texts in (("judge", "examples/sample/definitions.jsonl"),
                        ("idefics3", "examples/multimodal/pairs_mmeb.jsonl")):
        out = str(tmp_path / kind)
        built = subprocess.run([JUDGEMINE, "build-tiny-judge", "--kind", kind, "--output", out,
                                "--texts", texts], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert built.returncode == 0 and (built.stdout + built.stderr) == out + "\n", built.stdout + built.stderr
    demo = subprocess.run([JUDGEMINE, "run", "--config", "examples/demo.yaml", "--output",
                           str(tmp_path / "demo")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr
    logged = demo.stderr.splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} judgemine ", line) for line in logged), logged
    printed = demo.stdout.splitlines()
    assert printed[0].startswith("queries in:") and printed[-1].startswith("report:") and all(printed), printed
    assert len(logged) + len(printed) <= 30, logged + printed
