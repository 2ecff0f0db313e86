"""Every index type from the command line and from a config, and sharded search through the real stages."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import run_args

from judgemine.pipelines.cli.parser import main
from judgemine.schemas import QUERIES, RETRIEVAL, list_parts, read_table


def _retrieval(out: str):
    import pyarrow as pa
    return pa.concat_tables([read_table(p, RETRIEVAL) for p in list_parts(os.path.join(out, "stages", "retrieve"))])


@pytest.fixture()
def run_copy(e2e_run, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(e2e_run, out)
    return out


def test_sharded_flat_search_equals_one_index(run_copy, e2e_run, small_pairs, tiny_judge):
    args = run_args(run_copy, small_pairs, tiny_judge, "--index-shards", "3")
    assert main(["index", *args]) == 0 and main(["retrieve", *args]) == 0
    record = json.load(open(os.path.join(run_copy, "stages", "index", "stage.json")))
    assert record["counts"]["shards"] == 3 and len(record["counts"]["seconds_per_shard"]) == 3
    assert _retrieval(run_copy).equals(_retrieval(e2e_run))
    queries = {q["query_id"]: set(q["excluded_ids"]) for p in list_parts(os.path.join(run_copy, "stages", "ingest",
                                                                                     "queries"))
               for q in read_table(p, QUERIES).to_pylist()}
    assert not any(r["candidate_id"] in queries[r["query_id"]] for r in _retrieval(run_copy).to_pylist())


@pytest.mark.parametrize("factory", ["IVF4,Flat", "IVF4,PQ8x4", "IVF4,PQ8x4,RFlat", "HNSW8", "auto"])
def test_every_index_type_runs_from_the_command_line(run_copy, e2e_run, small_pairs, tiny_judge, factory):
    args = run_args(run_copy, small_pairs, tiny_judge, "--index-factory", factory, "--nprobe", "4")
    assert main(["index", *args]) == 0 and main(["retrieve", *args]) == 0
    counts = json.load(open(os.path.join(run_copy, "stages", "index", "stage.json")))["counts"]
    assert counts["factory"] == ("Flat" if factory == "auto" else factory)
    got, exact = _retrieval(run_copy), _retrieval(e2e_run)
    assert got.num_rows == exact.num_rows  # nprobe = nlist and a small pool: every query still gets K
    pairs = lambda t: set(zip(t.column("query_id").to_pylist(), t.column("candidate_id").to_pylist()))  # noqa: E731
    recall = len(pairs(got) & pairs(exact)) / exact.num_rows
    assert recall > (0.5 if factory == "IVF4,PQ8x4" else 0.99)  # a refine step re-ranks 4 x K exactly


def test_an_index_from_a_config_and_a_bad_factory(run_copy, small_pairs, tiny_judge, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("index_factory: HNSW8\nindex_shards: 2\nef_search: 32\n")
    args = run_args(run_copy, small_pairs, tiny_judge, "--config", str(config))
    assert main(["index", *args]) == 0 and main(["retrieve", *args]) == 0
    counts = json.load(open(os.path.join(run_copy, "stages", "index", "stage.json")))["counts"]
    assert counts["factory"] == "HNSW8" and counts["shards"] == 2
    assert main(["run", *run_args(run_copy, small_pairs, tiny_judge, "--index-factory", "IVF,Flatt")]) == 2
    assert "is not a FAISS factory string" in capsys.readouterr().err


@pytest.mark.parametrize("shards", [1, 2])
def test_retrieve_counts_queries_short_of_k_and_without_candidates(tmp_path, tiny_judge, shards):
    """The record's counts, read from each part's footer, on a pool of two positives (one index, the default,
    and two shards, merged): both rows of "big" exclude both (no candidate at all), "huge" excludes one and gets
    the other (1 < K)."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query_text": q, "pos_text": p}) + "\n" for q, p in [
        ("Define the word: big", "Of considerable size or extent."), ("Define the word: big", "Large in size."),
        ("Define the word: huge", "Of considerable size or extent.")]))
    args = run_args(str(tmp_path / "out"), [str(pairs)], tiny_judge, "--index-shards", str(shards))
    assert all(main([stage, *args]) == 0 for stage in ("ingest", "embed", "index", "retrieve"))
    counts = json.load(open(tmp_path / "out" / "stages" / "retrieve" / "stage.json"))["counts"]
    assert counts == {"queries": 3, "pairs": 1, "queries_without_candidates": 2, "queries_short_of_k": 3}
    row, = _retrieval(str(tmp_path / "out")).to_pylist()
    assert row["rank"] == 0


def test_a_part_the_search_cannot_write_fails_the_pipeline(run_copy):
    """Parts are written on a second thread while the next chunk is read: a failed write still fails the
    pipeline, with its cause, and is not lost (here the output directory is under a regular file)."""
    import apache_beam as beam
    from apache_beam.utils.shared import Shared

    from judgemine.schemas.layout import RunLayout, StageFolder
    from judgemine.transforms.common.chunks import chunks_of
    from judgemine.transforms.common.progress import StageWork
    from judgemine.transforms.retrieve.search import SearchAndWrite, SearchSpec

    stages = os.path.join(run_copy, "stages")
    chunks = chunks_of("queries", list_parts(os.path.join(stages, "embed", "queries")))
    assert len(chunks) > 2  # a write in flight while the next chunk is searched
    blocker = os.path.join(run_copy, "a-file")
    open(blocker, "w").close()
    run = RunLayout(run_copy)
    spec = SearchSpec(run.stage("index"), run.stage("ingest"), 12, device="cpu")
    search = SearchAndWrite(StageFolder(os.path.join(blocker, "retrieve")), spec, Shared(), StageWork())
    with pytest.raises(Exception, match="a-file"):
        with beam.Pipeline() as p:
            _ = p | beam.Create([(c, 0) for c in chunks]) | beam.ParDo(search)
