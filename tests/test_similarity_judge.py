"""`--judge-backend similarity`: no judge model, the retrieval similarity as the score, s_pos the query's
similarity to its own positive; every mining rule on top, checked against a brute-force recomputation
from the run's own vectors."""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pyarrow.parquet as pq
from conftest import run_args

from judgemine.pipelines.cli.parser import main
from judgemine.transforms.index.faiss_index import read_vectors


def _table(out: str, stage: str) -> list[dict]:
    return pq.read_table(sorted(glob.glob(os.path.join(out, "stages", stage, "part-*.parquet")))).to_pylist()


def _vectors(out: str, side: str) -> dict[str, np.ndarray]:
    ids, vecs = read_vectors(sorted(glob.glob(os.path.join(out, "stages", "embed", side, "*.parquet"))))
    return dict(zip(ids, vecs))


def test_similarity_judge_needs_no_model_and_scores_are_the_similarities(tmp_path, small_pairs):
    out = str(tmp_path / "out")
    # the default judge folder does not exist here: the similarity judge must not ask for it
    args = run_args(out, small_pairs, str(tmp_path / "no-such-judge"), "--judge-backend", "similarity",
                    "--relative-margin", "0.05", "--sampling", "top")
    assert main(["run", *args]) == 0
    queries, candidates = _vectors(out, "queries"), _vectors(out, "candidates")
    scores = _table(out, "judge")
    hits = {(h["query_id"], h["candidate_id"]): h["similarity"]
            for h in _table(out, "retrieve")}
    for s in scores:
        expected = (float(queries[s["query_id"]] @ candidates[s["candidate_id"]]) if s["is_positive"]
                    else hits[(s["query_id"], s["candidate_id"])])
        assert abs(s["score"] - expected) < 1e-6
    # the mined negatives: those left by the relative margin alone, the highest similarities first
    shards = pq.read_table(os.path.join(out, "shards")).to_pylist()
    assert shards
    by_query: dict[str, list[tuple[float, str]]] = {}
    for h in _table(out, "retrieve"):
        by_query.setdefault(h["query_id"], []).append((h["similarity"], h["rank"], h["candidate_id"]))
    repeated = 0
    for row in shards:
        s_pos = float(queries[row["query_id"]] @ candidates[row["pos_id"]])
        assert abs(row["pos_score"] - s_pos) < 1e-6
        left = [c for c in sorted(by_query[row["query_id"]], key=lambda c: (-c[0], c[1]))
                if c[0] <= s_pos - abs(s_pos) * 0.05]
        want = [c[2] for c in left][:5]
        want = [want[i % len(want)] for i in range(5)]
        repeated += len(left) < 5
        assert row["neg_ids"] == want
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["mining"]["rule"]["beta"] is None
    assert manifest["mining"]["rule"]["relative_margin"] == 0.05
    assert manifest["mining"]["rows_repeated"] == repeated
    assert manifest["mining"]["skipped"]["relative_margin"] > 0
    assert manifest["run"]["models"]["judge"] == {"backend": "similarity"}
    assert manifest["stages"]["judge"]["counts"]["pairs_scored_by_similarity"] == len(scores)
    assert manifest["stages"]["judge"]["counts"]["pairs_judged"] == 0


def test_every_rule_flag_reaches_the_shards(tmp_path, small_pairs):
    """range_min, max/min score and random sampling through the CLI: the picks obey them."""
    out = str(tmp_path / "out")
    args = run_args(out, small_pairs, str(tmp_path / "no-judge"), "--judge-backend", "similarity",
                    "--beta", "0.02",
                    "--max-score", "0.9", "--min-score", "-0.5", "--range-min", "2", "--sampling", "random",
                    "--seed", "4")
    assert main(["run", *args]) == 0
    for row in pq.read_table(os.path.join(out, "shards")).to_pylist():
        if row["fallback"]:
            continue
        assert all(r >= 2 for r in row["neg_ranks"])
        assert all(-0.5 <= s <= 0.9 and s <= row["pos_score"] - 0.02 + 1e-7 for s in row["neg_scores"])
        assert row["neg_scores"] == sorted(row["neg_scores"], reverse=True)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    rule = manifest["mining"]["rule"]
    assert (rule["beta"], rule["max_score"], rule["min_score"], rule["range_min"], rule["sampling"],
            rule["seed"]) == (0.02, 0.9, -0.5, 2, "random", 4)
    assert manifest["mining"]["skipped"]["range_min"] == manifest["stages"]["mine"]["counts"]["skipped_range_min"]
    assert manifest["mining"]["skipped"]["range_min"] > 0
