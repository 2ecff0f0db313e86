"""The joins that replace per-worker dicts: the pool by part (PoolLookup) and the score cache by key range
(CachedScores), on the real Beam runner with several worker processes, against plain dict look-ups."""
from __future__ import annotations

import hashlib
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from judgemine.schemas import CANDIDATES, SCORE_CACHE, part_name, write_table
from judgemine.transforms.common.candidates import PoolLookup, as_bytes, first_ids
from judgemine.transforms.judge.score_cache import CachedScores

WORKERS = PipelineOptions(["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"])


def _pool(directory: str, n: int, size: int) -> list[str]:
    """n candidates sorted by id in parts of `size` (as ingest writes them), one empty part at the end."""
    ids = sorted("c" + hashlib.sha256(str(i).encode()).hexdigest()[:24] for i in range(n))
    os.makedirs(directory)
    for part, start in enumerate(range(0, n, size)):
        rows = ids[start:start + size]
        table = pa.table({"candidate_id": rows, "text": [f"text of {c}" for c in rows], "image": [""] * len(rows),
                          "payload": [f"p{c}" for c in rows], "dataset": ["d"] * len(rows)})
        write_table(table, os.path.join(directory, part_name(part)), CANDIDATES)
    write_table(CANDIDATES.empty_table(), os.path.join(directory, part_name(-(-n // size))), CANDIDATES)
    return ids


@pytest.mark.slow
def test_pool_lookup_answers_each_chunk_from_the_parts(tmp_path):
    directory = str(tmp_path / "candidates")
    ids = _pool(directory, 500, 64)
    rng = np.random.default_rng(0)
    requests = {chunk: [ids[i] for i in rng.choice(500, 40)] + ["c" + "f" * 24, "c0"] for chunk in range(6)}
    requests[6] = ["c" + "0" * 24]  # before the first id: answered with nothing
    firsts, numbers = first_ids(sorted(os.path.join(directory, f) for f in os.listdir(directory)), "candidate_id")
    assert list(firsts) == [ids[i].encode() for i in range(0, 500, 64)] and list(numbers) == list(range(8))
    with beam.Pipeline(options=WORKERS) as p:
        found = (p | beam.Create([(c, as_bytes(r)) for c, r in requests.items()])
                 | PoolLookup(directory, CANDIDATES, "candidate_id", ["text"])
                 | beam.MapTuple(lambda c, t: (c, sorted(zip(t.column("candidate_id").to_pylist(),
                                                              t.column("text").to_pylist())))))
        assert_that(found, equal_to([(c, sorted({(i, f"text of {i}") for i in r if i in set(ids)}))
                                     for c, r in requests.items() if c != 6]))


@pytest.mark.slow
def test_cached_scores_join_by_key_range_and_the_later_file_wins(tmp_path):
    keys = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(300)]
    files = []
    for f, (start, end, score) in enumerate([(0, 200, 0.25), (150, 250, 0.75)]):
        path = str(tmp_path / f"scores-{f}.parquet")
        write_table(pa.table({"key": keys[start:end], "score": pa.array([score] * (end - start), pa.float32())}),
                    path, SCORE_CACHE)
        files.append(path)
    asked = {0: keys[:10] + keys[290:], 1: keys[140:160], 2: keys[260:270]}
    known = {**{k: 0.25 for k in keys[:200]}, **{k: 0.75 for k in keys[150:250]}}  # what dict.update would hold
    with beam.Pipeline(options=WORKERS) as p:
        found = p | beam.Create(list(asked.items())) | CachedScores(files)
        assert_that(found, equal_to([(c, {k: known[k] for k in ks if k in known}) for c, ks in asked.items()
                                     if any(k in known for k in ks)]))
