"""Ingest: both layouts, the official example data, every bad-row reason, dedup and exclusions."""
from __future__ import annotations

import json
import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import OFFICIAL_EXAMPLE, write_jsonl

from judgemine.pipelines.run.runner import run_one
from judgemine.pipelines.settings import Settings
from judgemine.schemas import CANDIDATES, QUERIES, list_parts, read_table
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.content import content_id
from judgemine.transforms.common.rejects import read_rejects
from judgemine.transforms.ingest.readers import RowError, assigned_query_id, parse_pairs


def _ingest(tmp_path, pairs, corpus=(), **kw):
    settings = Settings(output=str(tmp_path / "out"), pairs=tuple(pairs), corpus=tuple(corpus), chunk_size=8, **kw)
    record = run_one("ingest", settings, PipelineOptions(["--direct_num_workers", "1"]))
    d = RunLayout(settings.output).stage("ingest").path
    queries = [r for p in list_parts(os.path.join(d, "queries")) for r in read_table(p, QUERIES).to_pylist()]
    cands = [r for p in list_parts(os.path.join(d, "candidates")) for r in read_table(p, CANDIDATES).to_pylist()]
    rejects = [r for part in read_rejects(os.path.join(d, "rejects")) for r in part.to_pylist()]
    return record, queries, cands, rejects


@pytest.mark.slow
def test_official_unime_records_are_read_with_images_carried(tmp_path):
    record, queries, cands, rejects = _ingest(tmp_path, [OFFICIAL_EXAMPLE], skip_image_check=True)
    with open(OFFICIAL_EXAMPLE, encoding="utf-8") as f:
        official = json.load(f)
    assert record["counts"]["pairs_in"] == 50 and len(queries) == 50 and not rejects
    assert [q["query_text"] for q in queries] == [r["query_text"] for r in official]  # verbatim, tokens kept
    assert [q["query_image"] for q in queries] == [r["query_image"] for r in official]
    assert {q["pos_id"] for q in queries} <= {c["candidate_id"] for c in cands}
    assert len(list_parts(os.path.join(RunLayout(str(tmp_path / "out")).stage("ingest").path, "queries"))) == 7


def test_official_records_whose_images_are_missing_are_rejected(tmp_path):
    record, queries, _, rejects = _ingest(tmp_path, [OFFICIAL_EXAMPLE], max_reject_share=1.0)  # (the gate: below)
    with open(OFFICIAL_EXAMPLE, encoding="utf-8") as f:
        official = json.load(f)
    with_images = sum(1 for r in official if r["query_image"] or r["pos_image"])
    assert len(rejects) == with_images and len(queries) == 50 - with_images
    assert all(r["reason"].startswith("missing_image: images/") for r in rejects)


def test_mmeb_layout_maps_fields(tmp_path):
    row = {"qry": "<|image_1|>\nFind a caption.", "qry_image_path": "img/a.jpg", "pos_text": "A dog.",
           "pos_image_path": ""}
    assert parse_pairs(row, "auto") == [{"query_text": row["qry"], "query_image": "img/a.jpg", "pos_text": "A dog.",
                                         "pos_image": "", "dataset": "", "query_id": ""}]


@pytest.mark.parametrize("row,reason", [
    ({"pos_text": "x"}, "missing_field: query_text"),
    ({"query_text": "q"}, "missing_field: pos_text"),
    ({"query_text": 3, "pos_text": "x"}, "wrong_type: query_text is int, expected string"),
    ({"query_text": "q", "pos_text": "x", "query_id": 1.5},
     "wrong_type: query_id is float, expected string or integer"),
    ({"query_text": " <|image_1|> ", "pos_text": "x"}, "empty_query"),
    ({"query_text": "q", "pos_text": "", "pos_image": None}, "empty_positive"),
    ([1, 2], "not_an_object: list"),
])
def test_bad_rows_have_reasons(row, reason):
    with pytest.raises(RowError, match=reason.replace("(", r"\(")):
        parse_pairs(row, "auto")


def test_every_row_ends_in_queries_or_rejects(tmp_path):
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), [
        {"query_text": "What is big?", "pos_text": "Of considerable size."},
        "{not json",
        {"query_text": "", "pos_text": "orphan"},
        {"query_id": "a", "query_text": "one", "pos_text": "One thing."},
        {"query_id": "a", "query_text": "two", "pos_text": "Two things."},
        {"query_id": 7, "query_text": "seven", "pos_text": "Seven things."},
    ])
    record, queries, _, rejects = _ingest(tmp_path, [pairs])
    assert record["counts"]["pairs_in"] == 6 == len(queries) + len(rejects)
    assert sorted(r["reason"].split(":")[0] for r in rejects) == ["duplicate_query_id", "empty_query",
                                                                   "malformed_json"]
    dup = next(r for r in rejects if r["reason"] == "duplicate_query_id")
    assert dup["line"] == 5 and json.loads(dup["row"])["query_text"] == "two"
    first = {"query_text": "What is big?", "query_image": "", "pos_text": "Of considerable size.", "pos_image": ""}
    assert [q["query_id"] for q in queries] == [assigned_query_id(first), "a", "7"]


def test_candidates_dedup_case_and_space_and_corpus_joins(tmp_path):
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), [
        {"query_text": "q1", "pos_text": "The Capital is Paris."},
        {"query_text": "q2", "pos_text": "the capital  is paris."},
    ])
    corpus = write_jsonl(str(tmp_path / "corpus.jsonl"), [
        {"id": "x", "text": "THE CAPITAL IS PARIS."}, {"id": "y", "text": "Lyon is a city."}, {"id": "z"}])
    record, queries, cands, rejects = _ingest(tmp_path, [pairs], [corpus])
    assert queries[0]["pos_id"] == queries[1]["pos_id"]
    assert sorted(c["text"] for c in cands) == ["Lyon is a city.", "The Capital is Paris."]
    assert [r["reason"] for r in rejects] == ["missing_field: text"] and record["counts"]["rejected_pairs"] == 0


@pytest.mark.slow
def test_a_query_with_several_positives_excludes_all_of_them_and_itself(tmp_path):
    pairs = write_jsonl(str(tmp_path / "pairs.jsonl"), [
        {"query_text": "A fast animal", "query_image": "cheetah.jpg", "pos_text": "cheetah"},
        {"query_text": "a fast  animal", "query_image": "cheetah.jpg", "pos_text": "falcon"},
        {"query_text": "slow animal", "pos_text": "sloth"},
    ])
    _, queries, _, _ = _ingest(tmp_path, [pairs], skip_image_check=True)
    expected = {content_id("cheetah", ""), content_id("falcon", ""),
                content_id("a fast animal", "cheetah.jpg", read_images=False),
                content_id("", "cheetah.jpg", read_images=False)}
    assert set(queries[0]["excluded_ids"]) == expected == set(queries[1]["excluded_ids"])
    assert set(queries[2]["excluded_ids"]) == {content_id("sloth", ""), content_id("slow animal", "")}


def test_a_missing_input_file_is_a_user_error_before_anything_runs(tmp_path, capsys):
    from judgemine.pipelines.cli.parser import main
    missing = str(tmp_path / "missing.jsonl")
    assert main(["run", "--output", str(tmp_path / "out"), "--pairs", missing]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"judgemine: input file not found: {missing}"]
    assert not os.path.exists(RunLayout(str(tmp_path / "out")).stage("ingest").path)


@pytest.mark.parametrize("name,content,message", [
    ("broken.json", b'[{"query_text": "a", "pos_text": "b"}, {broken', "not a valid JSON array"),
    ("broken.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
    ("latin1.json", b'[{"query_text": "caf\xe9", "pos_text": "x"}]', "not UTF-8 text"),
])
def test_an_unreadable_input_file_stops_the_run_with_its_name(tmp_path, capsys, name, content, message):
    from judgemine.pipelines.cli.parser import main
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["ingest", "--output", str(tmp_path / "out"), "--pairs", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("judgemine: ingest failed: ") and f"{path}: {message}" in err
    assert not os.path.exists(RunLayout(str(tmp_path / "out")).stage("ingest").path)  # nothing half-written
