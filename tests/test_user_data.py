"""A new user's own data in the layouts they already have is mined, a file that cannot be mined stops after
ingest in one message with exit 2 (and `plan` says the same before any work), every wrong device, model folder
and value is refused before any stage starts in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from conftest import manifest_of, write_jsonl

from judgemine.pipelines.cli.parser import main
from judgemine.pipelines.settings import Settings
from judgemine.transforms.common.model_kinds import folder_kind
from judgemine.transforms.ingest.layouts import LAYOUTS
from judgemine.transforms.ingest.readers import RowError, assigned_query_id, parse_pairs, read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


@pytest.mark.parametrize("layout", ["unime", "mmeb", "sentence-transformers", "flag-embedding"])
def test_each_layouts_example_line_is_read_as_one_pair(layout):
    pairs = parse_pairs(json.loads(LAYOUTS[layout].example), "auto")
    assert len(pairs) == 1 and pairs[0]["pos_text"] and (pairs[0]["query_text"] or pairs[0]["query_image"])
    assert parse_pairs(json.loads(LAYOUTS[layout].example), layout) == pairs


def test_sentence_transformers_and_flag_embedding_rows_map_to_pairs():
    assert parse_pairs({"query": "q", "positive": "p", "negative": "n"}, "auto") == [
        {"query_text": "q", "query_image": "", "pos_text": "p", "pos_image": "", "dataset": "", "query_id": ""}]
    assert [p["pos_text"] for p in parse_pairs({"query": "q", "pos": ["a", "b"], "neg": ["c"]}, "auto")] == ["a", "b"]
    for row, reason in [({"foo": 1, "bar": 2}, "unknown_layout: fields bar, foo"),
                        ({"query": "q", "pos": "a"}, "wrong_type: pos is str, expected a non-empty list"),
                        ({"query": "q", "pos": []}, "wrong_type: pos is list"),
                        ({"anchor": "q"}, "missing_field: positive")]:
        with pytest.raises(RowError, match=reason):
            parse_pairs(row, "auto")


def test_csv_and_tsv_rows_are_read_by_their_header(tmp_path):
    (tmp_path / "a.csv").write_text('query,positive\n"a, quoted\nquery",p1\nq2,p2,extra\n\nq3,p3\n', encoding="utf-8")
    rows = list(read_rows(str(tmp_path / "a.csv")))
    assert rows[0] == (3, {"query": "a, quoted\nquery", "positive": "p1"})
    assert isinstance(rows[1][1], RowError) and str(rows[1][1]).startswith("wrong_column_count: 3 cells")
    assert rows[2] == (6, {"query": "q3", "positive": "p3"})
    (tmp_path / "b.tsv").write_text("query_text\tpos_text\nq\tp\n", encoding="utf-8")
    assert list(read_rows(str(tmp_path / "b.tsv"))) == [(2, {"query_text": "q", "pos_text": "p"})]


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


def test_a_sentence_transformers_folder_is_an_encoder_whatever_its_backbone(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"]}), encoding="utf-8")
    assert folder_kind(str(tmp_path))[0] == "chat"
    (tmp_path / "modules.json").write_text("[]", encoding="utf-8")  # gte-Qwen2: an embedder on a causal LM
    assert folder_kind(str(tmp_path))[0] == "encoder"


@pytest.mark.parametrize("args,line", [
    (["--beta", "abc"], "judgemine run: argument --beta: invalid float value: 'abc'"),
    (["--judge-backend", "server"], "judgemine run: argument --judge-backend: invalid choice: 'server'"),
    (["--top-k", "-3"], "judgemine: invalid settings: top_k=-3 (must be > 0)"),
    (["--max-reject-share", "2"], "judgemine: invalid settings: max_reject_share=2.0 (must be in (0, 1])")])
def test_a_bad_value_is_one_line_naming_only_that_setting(tmp_path, capsys, args, line):
    assert main(["run", "--output", str(tmp_path / "o"), "--pairs", "x.jsonl", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(line) and "\n" not in err and "chunk_size" not in err, err


def test_a_yaml_key_typo_names_the_closest_key(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("pairs: [x.jsonl]\ntopk: 5\n", encoding="utf-8")
    assert main(["run", "--config", str(tmp_path / "c.yaml"), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "topk" in err and "did you mean top_k" in err and "\n" not in err, err


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


def test_the_fallback_advice_goes_the_way_the_runs_own_beta_table_goes(e2e_run):
    """A fallback row is a query whose every candidate scored above s_pos - beta: a larger beta drops more of
    them. The advice names the direction in which the run's own beta table (the report's) leaves fewer queries
    with no negative."""
    from judgemine.pipelines.outputs.health import findings
    from judgemine.pipelines.outputs.report.sweep import beta_sweep
    none_left = [row["no_negatives_left"] for row in beta_sweep(e2e_run, 5)]  # betas ascending
    assert none_left == sorted(none_left) and none_left[0] < none_left[-1], none_left
    [advice] = [f.fix for f in findings(manifest_of(e2e_run)) if "fallback rows" in f.what]
    assert advice.startswith("a weak judge or near-duplicates in the pool; try a smaller --beta "), advice
    assert "report's beta table" in advice and "larger --beta" not in advice


@pytest.mark.parametrize("folder,expected", [
    ("empty", "--judge-model {dir} has no config.json: not a model folder (empty, or copied in part?)"),
    ("no-type", "--judge-model {dir}: its config.json names no model_type or architectures (or is not JSON): not "
                "a model folder judgemine can load"),
    ("classifier", "--judge-model {dir} is a cross-encoder reranker (BertForSequenceClassification), but "
                   "--judge-backend transformers needs a chat model"),
])
def test_a_judge_folder_that_cannot_serve_says_why_and_what_to_do_in_one_line(folder, expected, tmp_path, capsys):
    model = tmp_path / folder
    model.mkdir()
    if folder == "no-type":
        (model / "config.json").write_text("{}")
    elif folder == "classifier":
        (model / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"],
                                                       "model_type": "bert"}))
    pairs = write_jsonl(str(tmp_path / "p.jsonl"), [{"query_text": q, "pos_text": p} for q, p in PAIRS])
    assert main(["plan", "--pairs", pairs, "--output", str(tmp_path / "out"), "--judge-model", str(model)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("judgemine: " + expected.format(dir=model)), line
    if folder == "classifier":  # the backend that takes it, named
        assert line.endswith(": use --judge-backend cross-encoder for this one"), line


def test_status_without_the_runs_settings_says_so_and_exits_2(tmp_path, capsys):
    assert main(["status", "--output", str(tmp_path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == ("judgemine: status compares what is committed under --output with the run's settings, and none "
                    "were given: pass the run's --config (or its --pairs and the flags it ran with)")


def test_the_demo_judge_is_the_repositorys_from_any_working_directory(tmp_path, monkeypatch):
    from judgemine.pipelines.cli.commands import settings_of
    from judgemine.pipelines.cli.parser import parser
    monkeypatch.chdir(tmp_path)
    args, rest = parser().parse_known_args(["plan", "--pairs", "p.jsonl", "--output", "out"])
    settings, _ = settings_of(args, rest, "judgemine plan")
    assert settings.judge_model == os.path.join(ROOT, "models", "tiny-judge")


def test_plan_counts_the_judge_pairs_a_small_pool_allows(tmp_path, capsys):
    pairs = write_jsonl(str(tmp_path / "p.jsonl"), [{"query_text": q, "pos_text": p} for q, p in PAIRS])
    assert main(["plan", "--pairs", pairs, "--output", str(tmp_path / "out"), "--judge-backend", "similarity"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("judge pairs:")]
    # 4 queries, a pool of 4 positives: each query's positive and the other 3, not K = 50 + 1
    assert lines == ["judge pairs:        16 at most (4 per query: the positive and min(K, pool - 1) candidates), "
                     "cached: known after retrieval"], lines


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
