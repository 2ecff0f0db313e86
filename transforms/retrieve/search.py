"""The index and retrieve stages' DoFns: build the index once, then top-K per query chunk."""
from __future__ import annotations

import logging
import os
from typing import Any, Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from judgemine.schemas import QUERIES, RETRIEVAL, list_parts, part_name, read_table, write_table
from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.retrieve.faiss_index import CandidateIndex, build_index, read_vectors, save_index

log = logging.getLogger("judgemine")


class BuildIndex(beam.DoFn):
    """Reads every candidate vector and writes the index and its id list."""

    def __init__(self, embed_dir: str, directory: str, factory: str, seed: int) -> None:
        self._embed_dir, self._dir, self._factory, self._seed = embed_dir, directory, factory, seed

    def process(self, _: Any) -> Iterable[int]:
        ids, vectors = read_vectors(list_parts(os.path.join(self._embed_dir, "candidates")))
        if not ids:
            raise ValueError("the candidate pool is empty: nothing to index")
        save_index(build_index(vectors, self._factory, self._seed), ids, self._dir)
        yield len(ids)


class RetrieveChunk(beam.DoFn):
    """Top-K candidates for one chunk of query vectors, excluding each query's positives and itself."""

    def __init__(self, index_dir: str, ingest_dir: str, directory: str, k: int, delta: float, search_params: str,
                 device: str, shared: Shared) -> None:
        self._index_dir, self._ingest_dir, self._dir = index_dir, ingest_dir, directory
        self._k, self._delta, self._params, self._device = k, delta, search_params, device
        self._shared = shared
        self._short = Metrics.counter("judgemine.retrieve", "queries_short_of_k")
        self._queries = Metrics.counter("judgemine.retrieve", "queries")

    def setup(self) -> None:
        self._index = self._shared.acquire(lambda: CandidateIndex(self._index_dir, self._params, self._device),
                                           tag=f"{self._index_dir}|{self._device}")
        log.info("retrieve: searching with %s", self._index.backend)

    def process(self, chunk: Chunk) -> Iterable[int]:
        ids, vectors = read_vectors([chunk.path])
        queries = read_table(os.path.join(self._ingest_dir, "queries", part_name(chunk.index)), QUERIES,
                             ["query_id", "excluded_ids"]).to_pylist()
        excluded = {q["query_id"]: q["excluded_ids"] for q in queries}
        columns: dict[str, Any] = {"query_id": [], "candidate_id": [], "rank": [], "similarity": []}
        if ids:
            rows, sims = self._index.search_excluding(vectors, [excluded[i] for i in ids], self._k, self._delta)
            found = rows >= 0  # a query's hits are a prefix of its row, so the column is its rank
            self._short.inc(int((found.sum(1) < self._k).sum()))
            q, rank = np.nonzero(found)
            columns = {"query_id": np.asarray(ids, dtype=object)[q],
                       "candidate_id": self._index.ids_array[rows[q, rank]],
                       "rank": rank.astype(np.int32), "similarity": sims[q, rank]}
        self._queries.inc(len(ids))
        write_table(pa.table(columns, schema=RETRIEVAL), os.path.join(self._dir, part_name(chunk.index)),
                    RETRIEVAL)
        yield len(ids)
