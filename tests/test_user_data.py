"""A new user's own data in the layouts they already have is read as pairs, and every wrong value, model folder
or setting is refused in one line before any work, in process. The whole runs of a new user's first hour (their
files mined, refusals after ingest, the messages that name the judge) are in tests/first_hour/."""
from __future__ import annotations

import json
import os

import pytest
from conftest import ROOT, manifest_of, write_jsonl

from judgemine.pipelines.cli.parser import main
from judgemine.transforms.common.model_kinds import folder_kind
from judgemine.transforms.ingest.layouts import LAYOUTS
from judgemine.transforms.ingest.readers import RowError, parse_pairs, read_rows

PAIRS = [("What is the capital of Peru?", "Lima is the capital of Peru."),
         ("What is the capital of Chile?", "Santiago is the capital of Chile."),
         ("Define the word: vast", "Of very great extent or quantity."),
         ("Which planet is closest to the sun?", "Mercury orbits closest to the sun.")]


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

