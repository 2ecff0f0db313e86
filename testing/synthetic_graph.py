"""A synthetic judged run for the batches export at any size: each query's 20 retrieved candidates are other
queries' positives, every fifth (1st, 6th, ...) a likely false negative (scored 0.9 against the positive's 0.5), the
others its kept negatives (the first 10). Judge parts are written a chunk of 4,096 queries at a time, as a run writes
them; shard rows are generated one at a time, never held (tests/test_graph_batches.py, bench/bench_batches.py)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

CANDIDATES, NEGATIVES, CHUNK = 20, 10, 4096


class SyntheticJudged:
    def __init__(self, n: int, folder: str, seed: int = 1) -> None:
        self.n, self.folder, self.seed = n, folder, seed
        self.parts: list[str] = []

    def candidates(self, start: int, stop: int) -> np.ndarray:
        """Queries start..stop's candidates (row numbers), the same on every call."""
        return np.random.default_rng([self.seed, start]).integers(0, self.n, (stop - start, CANDIDATES))

    def flagged(self, row: int) -> list[int]:
        start = row - row % CHUNK
        return self.candidates(start, min(self.n, start + CHUNK))[row - start, ::5].tolist()

    def write_judge_parts(self) -> list[str]:
        from judgemine.schemas import JUDGE_SCORES, write_table
        columns = CANDIDATES + 1
        score = np.where(np.arange(columns) % 5 == 1, 0.9, 0.1).astype(np.float32)
        score[0] = 0.5
        for start in range(0, self.n, CHUNK):
            stop = min(self.n, start + CHUNK)
            ids = np.concatenate([np.arange(start, stop)[:, None], self.candidates(start, stop)], axis=1)
            queries = np.repeat(np.arange(start, stop), columns)
            table = pa.table({"query_id": np.char.add("q", queries.astype(str)),
                              "candidate_id": np.char.add("p", ids.ravel().astype(str)),
                              "is_positive": np.tile(np.arange(columns) == 0, stop - start),
                              "score": np.tile(score, stop - start)})
            self.parts.append(os.path.join(self.folder, f"part-{len(self.parts):05d}.parquet"))
            write_table(table, self.parts[-1], JUDGE_SCORES)
        return self.parts

    def rows(self) -> Iterator[dict[str, Any]]:
        """Shard rows as the export reads them (k = 10 negatives), one at a time."""
        for start in range(0, self.n, CHUNK):
            found = self.candidates(start, min(self.n, start + CHUNK)).tolist()
            for i, row in zip(range(start, start + len(found)), found):
                negs = [f"p{j}" for k, j in enumerate(row) if k % 5][:NEGATIVES]
                yield {"query_id": f"q{i}", "query_text": f"query {i}", "query_image": "", "pos_id": f"p{i}",
                       "pos_text": f"positive {i}", "pos_image": "", "pos_score": 0.5, "neg_ids": negs,
                       "neg_texts": [f"text of {c}" for c in negs], "neg_images": [""] * len(negs),
                       "neg_scores": [0.1] * len(negs), "neg_ranks": list(range(len(negs))),
                       "neg_similarities": [0.5] * len(negs), "num_unique_negatives": len(negs),
                       "num_candidates": CANDIDATES, "num_false_negatives": 4, "fallback": False,
                       "dataset": "synthetic", "extra_pos_ids": [], "extra_pos_texts": [], "extra_pos_images": [],
                       "extra_pos_scores": []}
