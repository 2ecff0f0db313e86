"""Stage 3: the FAISS index over candidates (stages/index) and top-K per query chunk (stages/retrieve)."""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.shared import Shared

from pipelines.artifacts import (atomic_dir, chain_fingerprint, list_parts, part_name, require_stage, stage_dir,
                                 write_stage_record)
from pipelines.settings import Settings
from schemas import QUERIES, RETRIEVAL, read_table, write_table
from transforms.chunks import Chunk, chunks_of
from transforms.retrieval import CandidateIndex, build_index, read_vectors, save_index

INDEX_SETTINGS = ("index_factory", "seed")
RETRIEVE_SETTINGS = ("top_k", "delta", "search_params")
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

    def __init__(self, index_dir: str, ingest_dir: str, directory: str, settings: Settings, shared: Shared) -> None:
        self._index_dir, self._ingest_dir, self._dir = index_dir, ingest_dir, directory
        self._k, self._delta, self._params = settings.top_k, settings.delta, settings.search_params
        self._device = settings.search_device
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


def fingerprint_index(settings: Settings) -> str:
    return chain_fingerprint(require_stage(settings.output, "embed")["fingerprint"],
                             settings.fingerprint(*INDEX_SETTINGS))


def fingerprint_retrieve(settings: Settings) -> str:
    return chain_fingerprint(require_stage(settings.output, "index")["fingerprint"],
                             settings.fingerprint(*RETRIEVE_SETTINGS))


def run_index(settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    started = time.time()
    fp = fingerprint_index(settings)
    embed_dir = stage_dir(settings.output, "embed")
    with atomic_dir(stage_dir(settings.output, "index")) as tmp:
        with beam.Pipeline(options=options) as p:
            _ = (p | "IndexSpec" >> beam.Create([settings.index_factory])
                 | "BuildIndex" >> beam.ParDo(BuildIndex(embed_dir, tmp, settings.index_factory, settings.seed)))
        ntotal = pq.ParquetFile(os.path.join(tmp, "ids.parquet")).metadata.num_rows
        record = write_stage_record(tmp, "index", fp, started,
                                    {"candidates": ntotal, "factory": settings.index_factory})
    return record


def run_retrieve(settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    started = time.time()
    fp = fingerprint_retrieve(settings)
    chunks = chunks_of("queries", list_parts(os.path.join(stage_dir(settings.output, "embed"), "queries")))
    with atomic_dir(stage_dir(settings.output, "retrieve")) as tmp:
        with beam.Pipeline(options=options) as p:
            _ = (p | "ListChunks" >> beam.Create(chunks)
                 | "SpreadChunks" >> beam.Reshuffle()
                 | "SearchIndex" >> beam.ParDo(RetrieveChunk(
                     stage_dir(settings.output, "index"), stage_dir(settings.output, "ingest"), tmp, settings,
                     Shared())))
        counts = _count_retrieve(tmp, stage_dir(settings.output, "embed"), settings.top_k)
        record = write_stage_record(tmp, "retrieve", fp, started, counts)
    return record


def _count_retrieve(directory: str, embed_dir: str, k: int) -> dict[str, Any]:
    """Queries with fewer than K candidates are counted, never hidden (the pool may be too small)."""
    queries = sum(pq.ParquetFile(p).metadata.num_rows for p in list_parts(os.path.join(embed_dir, "queries")))
    per_query = [v["counts"] for path in list_parts(directory)
                 for v in read_table(path, RETRIEVAL, ["query_id"]).column("query_id").value_counts().to_pylist()]
    without = queries - len(per_query)
    return {"queries": queries, "pairs": sum(per_query), "queries_without_candidates": without,
            "queries_short_of_k": without + sum(1 for c in per_query if c < k)}
