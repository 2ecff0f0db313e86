"""The retrieve stage's DoFns: each (query chunk, index shard) searched by one worker; a chunk's per-shard
results merged into its global top-K (one shard: written where searched)."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from judgemine.schemas import QUERIES, RETRIEVAL, read_table, write_table
from judgemine.schemas.layout import StageFolder
from judgemine.schemas.tables import QUERIES_KEY, SHORT_OF_K_KEY, WITHOUT_CANDIDATES_KEY
from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.index.faiss_index import (
    CandidateIndex,
    read_vectors,
)

log = logging.getLogger(__name__)


# One shard's answer for a query chunk: (shard, query ids, candidate ids of the n x k hits flattened row by row
# (null where none), similarities (n, k), -inf where none).
Found = tuple[int, list[str], pa.Array, np.ndarray]
# A shard's search of a chunk before its rows are named: (the shard's index, rows (n, k), -1 where none,
# similarities (n, k)).
Searched = tuple[CandidateIndex, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SearchSpec:
    """What a search reads and how it searches: the committed index and ingest folders, K, the near-duplicate
    cut delta (<= 0: off), the IVF/HNSW breadths (0: automatic) or a raw FAISS ParameterSpace string, and where."""
    index: StageFolder
    ingest: StageFolder
    k: int
    delta: float = 0.0
    nprobe: int = 0
    ef_search: int = 0
    search_params: str = ""
    device: str = "auto"


class SearchShard(beam.DoFn):
    """One query chunk against one index shard: each query's top K eligible candidates of that shard (its
    exclusions and the delta cut are per candidate, so they are applied here and the merge stays exact). The
    counter search_ms is the time in the index search itself (with its exclusion filter), index_load_ms the time
    spent loading index shards: the stage record then says how much of the stage the search is and how much a
    once-per-worker load, the rest being reading, writing and Beam."""

    def __init__(self, spec: SearchSpec, shared: Shared, work: StageWork) -> None:
        self._work = work
        self._index_folder, self._ingest = spec.index, spec.ingest
        self._k, self._delta, self._nprobe, self._ef = spec.k, spec.delta, spec.nprobe, spec.ef_search
        self._params, self._device, self._shared = spec.search_params, spec.device, shared
        self._indexes: dict[int, CandidateIndex] = {}
        self._search_ms = Metrics.counter("judgemine.retrieve", "search_ms")
        self._load_ms = Metrics.counter("judgemine.retrieve", "index_load_ms")

    def _index(self, shard: int) -> CandidateIndex:
        if shard not in self._indexes:
            path = self._index_folder.index_shard(shard)

            def load() -> CandidateIndex:
                started = time.perf_counter()
                index = CandidateIndex(path, self._nprobe, self._ef, 2 * self._k, self._device, self._params)
                self._load_ms.inc(math.ceil(1000 * (time.perf_counter() - started)))
                return index

            self._indexes[shard] = self._shared.acquire(
                load, tag=f"{path}|{self._device}|{self._nprobe}|{self._ef}|{self._params}")
            log.info("retrieve: shard %d searching with %s %s", shard, self._indexes[shard].backend,
                     self._indexes[shard].parameters)
        return self._indexes[shard]

    def _read(self, chunk: Chunk) -> tuple[list[str], np.ndarray, pa.ListArray | None]:
        """A query chunk's ids, vectors and each query's excluded candidate ids (None for an empty chunk)."""
        ids, vectors = read_vectors([chunk.path])
        if not ids:
            return ids, vectors, None
        queries = read_table(self._ingest.part("queries", chunk.index), QUERIES,
                             ["query_id", "excluded_ids"])
        at = pc.index_in(pa.array(ids, pa.string()), queries.column("query_id"))
        if at.null_count:
            raise RuntimeError(f"query chunk {chunk.index}: embedded queries missing from ingest's part")
        return ids, vectors, queries.column("excluded_ids").take(at).combine_chunks()

    def _search(self, shard: int, vectors: np.ndarray, excluded: pa.ListArray) -> Searched:
        """Each query's top K eligible candidates in the shard."""
        index = self._index(shard)
        started = time.perf_counter()
        rows, sims = index.search_excluding(vectors, excluded, self._k, self._delta)
        self._search_ms.inc(math.ceil(1000 * (time.perf_counter() - started)))
        return index, rows, sims

    def _found(self, shard: int, ids: list[str], searched: Searched | None) -> Found:
        if searched is None:
            return shard, ids, pa.array([], pa.string()), np.zeros((0, self._k), np.float32)
        index, rows, sims = searched
        return shard, ids, index.ids_of(rows), np.where(rows >= 0, sims, -np.inf).astype(np.float32)

    def process(self, task: tuple[Chunk, int]) -> Iterable[tuple[int, Found]]:
        chunk, shard = task
        ids, vectors, excluded = self._read(chunk)
        searched = None if excluded is None else self._search(shard, vectors, excluded)
        yield chunk.index, self._found(shard, ids, searched)


def merge_shards(parts: Iterable[Found], k: int) -> tuple[list[str], pa.Array, np.ndarray]:
    """(query ids, candidate ids flattened as in Found, similarities (n, k)): per query the best k of every
    shard's best k, ties in shard order then rank (one shard: its own result unchanged)."""
    parts = sorted(parts, key=lambda p: p[0])
    ids = parts[0][1]
    if len(parts) == 1:
        return ids, parts[0][2], parts[0][3]
    sims = np.concatenate([p[3] for p in parts], axis=1)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    n = len(ids)  # column c of the concatenation is shard c // k's rank c % k, at n * k * shard + k * query + rank
    flat = (order // k) * (n * k) + np.arange(n)[:, None] * k + order % k
    names = pa.concat_arrays([p[2] for p in parts]).take(pa.array(flat.reshape(-1)))
    return ids, names, np.take_along_axis(sims, order, 1)


class PartWriter:
    """Writes a query chunk's merged top-K to its part file, its query counts in the file's metadata."""

    def __init__(self, folder: StageFolder, k: int, work: StageWork) -> None:
        self._folder, self._k, self._work = folder, k, work
        self._short = Metrics.counter("judgemine.retrieve", "queries_short_of_k")
        self._queries = Metrics.counter("judgemine.retrieve", "queries")

    def write(self, index: int, parts: list[Found]) -> tuple[int, int]:
        """(queries, queries short of K) written; touches no Beam state, so any thread may call it."""
        ids, names, sims = merge_shards(parts, self._k)
        found = np.isfinite(sims)  # a query's hits are a prefix of its row, so the column is its rank
        hits = found.sum(1)
        if found.all():  # the usual chunk: every query has its K, row by row as they are
            q, rank, similarity = np.repeat(np.arange(len(ids)), self._k), np.tile(np.arange(self._k), len(ids)), \
                sims.reshape(-1)
        else:
            q, rank = np.nonzero(found)
            names, similarity = names.take(pa.array(q * self._k + rank)), sims[q, rank]
        columns = {"query_id": pa.array(ids, pa.string()).take(pa.array(q)), "candidate_id": names,
                   "rank": rank.astype(np.int32), "similarity": similarity}
        short = int((hits < self._k).sum())
        write_table(pa.table(columns, schema=RETRIEVAL), self._folder.own_part(index), RETRIEVAL,
                    {QUERIES_KEY: str(len(ids)), SHORT_OF_K_KEY: str(short),
                     WITHOUT_CANDIDATES_KEY: str(int((hits == 0).sum()))})
        return len(ids), short

    def count(self, written: tuple[int, int]) -> int:
        """A write's counts into Beam's counters: on the DoFn's own thread (Beam's metrics are per thread: an
        increment on another one is not seen)."""
        queries, short = written
        self._queries.inc(queries)
        self._short.inc(short)
        self._work.add(queries)
        return queries


class SearchAndWrite(SearchShard):
    """One index shard: each query chunk's result written by the worker that searched it, not shuffled to a
    merge step (that cost 60 ms of 119 besides a 470 ms IVF-PQ search of 4,096 queries, bench/RESULTS.md), and
    on a second thread while the worker reads the next chunk. The write is waited for before that chunk's
    search (the cores are the search's: nothing runs beside it) and before the bundle ends (no write outlives
    its bundle); the one write thread runs writes in order, so a failed bundle's leftover write never races
    its retry on the same part."""

    def __init__(self, folder: StageFolder, spec: SearchSpec, shared: Shared, work: StageWork) -> None:
        super().__init__(spec, shared, work)
        self._writer = PartWriter(folder, self._k, work)
        self._pool: ThreadPoolExecutor | None = None
        self._writing: Future[tuple[int, int]] | None = None

    def setup(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="judgemine-retrieve-write")

    def start_bundle(self) -> None:
        self._writing = None  # a failed bundle's: its part is written again when the bundle is retried

    def _wait_for_write(self) -> None:
        """The write in flight finished (its error raised here) and counted."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self._writer.count(writing.result())

    def process(self, task: tuple[Chunk, int]) -> None:  # type: ignore[override]
        chunk, shard = task
        ids, vectors, excluded = self._read(chunk)
        self._wait_for_write()
        searched = None if excluded is None else self._search(shard, vectors, excluded)
        assert self._pool is not None
        self._writing = self._pool.submit(self._write, chunk.index, shard, ids, searched)

    def _write(self, index: int, shard: int, ids: list[str], searched: Searched | None) -> tuple[int, int]:
        """On the write thread: the rows named (an Arrow take) and the part written."""
        return self._writer.write(index, [self._found(shard, ids, searched)])

    def finish_bundle(self) -> None:
        self._wait_for_write()

    def teardown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class WriteRetrieval(beam.DoFn):
    """Several index shards: a query chunk's per-shard results, grouped, merged and written."""

    def __init__(self, folder: StageFolder, k: int, shards: int, work: StageWork) -> None:
        self._writer, self._shards = PartWriter(folder, k, work), shards

    def process(self, keyed: tuple[int, Iterable[Found]]) -> Iterable[int]:
        index, parts = keyed
        parts = list(parts)
        if len(parts) != self._shards:
            raise RuntimeError(f"query chunk {index}: {len(parts)} of {self._shards} index shards answered")
        yield self._writer.count(self._writer.write(index, parts))
