"""Batches from the retrieval graph: every batch but the last is full, a judged false negative never shares a
batch with its query (nor two rows their positive), hard negatives are batched together where the graph allows,
the export is the same bytes on a rerun, and 100k rows batch in bounded time and memory."""
from __future__ import annotations

import json
import os
import random
import time
import tracemalloc

import pyarrow.parquet as pq

from judgemine.pipelines.outputs.exports.graph_batches import graph_batches


def _check(positives, forbidden, batched, size):
    by_batch: dict[int, list[int]] = {}
    for row, b in zip(batched.order, batched.batch):
        by_batch.setdefault(b, []).append(row)
    sizes = [len(by_batch[b]) for b in sorted(by_batch)]
    assert all(s == size for s in sizes[:-1]) and 0 < sizes[-1] <= size
    assert sorted(batched.order + batched.left_out) == list(range(len(positives)))
    for members in by_batch.values():
        assert len({positives[m] for m in members}) == len(members)
        assert not any(o in forbidden[m] for m in members for o in members if o != m)
    return by_batch


def test_hard_negatives_share_a_batch_and_false_negatives_never_do():
    positives = [f"p{i}" for i in range(8)]
    neighbours = [[1, 2], [0], [3], [], [5], [4], [7], [6]]  # row 0's hard negatives are rows 1 and 2's positives
    forbidden = [{3}, set(), set(), {0}, set(), set(), set(), set()]  # row 3's positive is a false negative of row 0
    batched = graph_batches(positives, neighbours, forbidden, 4)
    by_batch = _check(positives, forbidden, batched, 4)
    assert by_batch[0][:3] == [0, 1, 2] and 3 not in by_batch[0] and not batched.left_out
    assert graph_batches(positives, neighbours, forbidden, 4) == batched  # deterministic


def test_rows_that_fit_no_full_batch_are_left_out_and_counted():
    positives = ["a", "a", "a", "b"]  # three rows share a positive: no batch holds two of them
    batched = graph_batches(positives, [[]] * 4, [set()] * 4, 2)
    _check(positives, [set()] * 4, batched, 2)
    # [0, 3] is full; row 1 fits beside no row left (2 shares its positive): left out; row 2 is the last batch
    assert (batched.order, batched.batch, batched.left_out) == ([0, 3, 2], [0, 0, 1], [1])


def test_100k_rows_batch_in_bounded_time_and_memory():
    rng = random.Random(0)
    n = 100_000
    positives = [f"c{i:06d}" for i in range(n)]
    neighbours = [[rng.randrange(n) for _ in range(10)] for _ in range(n)]
    forbidden = [{rng.randrange(n) for _ in range(3)} for _ in range(n)]
    tracemalloc.start()
    started = time.perf_counter()
    batched = graph_batches(positives, neighbours, forbidden, 64)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    _check(positives, forbidden, batched, 64)
    assert len(batched.left_out) < 64  # only the last batch's conflicts
    assert seconds < 60 and peak < 64 * 2**20, (seconds, peak)  # the batching's own memory, not the inputs'


def test_the_export_batches_the_run_as_its_judge_and_rule_say(e2e_run, tmp_path):
    from judgemine.pipelines.cli.parser import main
    from judgemine.schemas import JUDGE_SCORES, list_parts, read_table
    first, again = str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")
    for to in (first, again):
        assert main(["export", "--output", e2e_run, "--format", "batches", "--batch-size", "8", "--to", to]) == 0
    assert open(first, "rb").read() == open(again, "rb").read()
    table = pq.read_table(first).to_pylist()
    beta = json.load(open(os.path.join(e2e_run, "manifest.json")))["mining"]["rule"]["beta"] or 0.01
    scores = [r for part in list_parts(os.path.join(e2e_run, "stages", "judge"))
              for r in read_table(part, JUDGE_SCORES).to_pylist()]
    positive = {r["query_id"]: r["score"] for r in scores if r["is_positive"]}
    false = {(r["query_id"], r["candidate_id"]) for r in scores
             if not r["is_positive"] and r["score"] > positive[r["query_id"]] - beta}
    batches: dict[int, list[dict]] = {}
    for row in table:
        batches.setdefault(row["batch"], []).append(row)
    assert all(len(rows) == 8 for b, rows in batches.items() if b < max(batches))
    for rows in batches.values():
        assert not any((a["query_id"], b["pos_id"]) in false for a in rows for b in rows if a is not b)
    shards = pq.read_table(os.path.join(e2e_run, "shards")).to_pylist()
    assert len(table) <= sum(not r["fallback"] for r in shards) and len(table) > 0
    import datasets  # as a sentence-transformers trainer loads it, rows in batch order
    loaded = datasets.load_dataset("parquet", data_files=first, split="train")
    assert loaded.column_names == ["batch", "anchor", "positive", "query_id", "pos_id"]
    assert loaded["batch"] == [r["batch"] for r in table] == sorted(r["batch"] for r in table)
    from torch.utils.data import DataLoader  # read without shuffling, 8 at a time: each step is one whole batch
    steps = [step["batch"].tolist() for step in DataLoader(loaded.with_format("torch", columns=["batch"]),
                                                           batch_size=8, shuffle=False)]
    assert all(len(set(step)) == 1 for step in steps) and len({step[0] for step in steps}) == len(steps)
