"""FAISS over the candidate vectors: each index shard built from a factory string and trained on a seeded
sample of its vectors, loaded with its search parameters, and top-K search that honours each query's
exclusions (index_choice.py says which index suits a pool size; shards are merged in search.py)."""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from judgemine.schemas import EMBEDDINGS, INDEX_IDS, num_rows, read_table, storage, write_table
from judgemine.transforms.common.candidates import as_bytes
from judgemine.transforms.index.index_choice import search_parameters, training_size

log = logging.getLogger(__name__)
BUILD_INFO = "build.json"


def shard_rows(counts: Sequence[int], shard: int, shards: int) -> tuple[int, int]:
    """Shard `shard`'s [start, end) over the pool's rows in part-file order: contiguous, sizes within one."""
    total = sum(counts)
    return shard * total // shards, (shard + 1) * total // shards


def read_vectors(paths: Sequence[str], rows: tuple[int, int] | None = None) -> tuple[list[str], np.ndarray]:
    """Ids and an (n, d) float32 matrix from embedding part files, in file order; `rows` = [start, end) of
    their concatenation (only the files it touches are read)."""
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    offset = 0
    for path in paths:
        n = num_rows(path) if rows else -1
        if rows and (offset + n <= rows[0] or offset >= rows[1]):
            offset += n
            continue
        table = read_table(path, EMBEDDINGS)
        if rows:
            table = table.slice(max(rows[0] - offset, 0), min(rows[1], offset + n) - max(rows[0], offset))
            offset += n
        if table.num_rows == 0:
            continue
        dim = table.schema.field("vector").type.list_size
        ids.extend(table.column("id").to_pylist())
        blocks.append(table.column("vector").combine_chunks().values.to_numpy().reshape(-1, dim))
    if not blocks:
        return ids, np.zeros((0, 0), np.float32)
    return ids, np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)


def build_index(vectors: np.ndarray, factory: str, seed: int = 0, train_size: int = 0) -> tuple[faiss.Index,
                                                                                            dict[str, Any]]:
    """An inner-product index from a factory string. One that needs training is trained on a seeded sample of
    `train_size` vectors (0: FAISS's rule of thumb for its centroids, index_choice.py), never on the whole pool."""
    t0 = time.monotonic()
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    trained_on = 0
    if not index.is_trained:
        trained_on = min(len(vectors), train_size or training_size(index))
        sample = np.sort(np.random.default_rng(seed).choice(len(vectors), trained_on, replace=False))
        _seed_clustering(index, seed)
        index.train(vectors[sample])
    t1 = time.monotonic()
    index.add(vectors)
    info = {"factory": factory, "vectors": int(index.ntotal), "dim": int(vectors.shape[1]), "trained_on": trained_on,
            "train_seconds": round(t1 - t0, 3), "add_seconds": round(time.monotonic() - t1, 3), "seed": seed}
    return index, info


def _seed_clustering(index: faiss.Index, seed: int) -> None:
    """Every k-means inside the index (IVF's coarse quantizer, PQ's sub-quantizers) draws from `seed`."""
    try:
        inner = faiss.extract_index_ivf(index)
        inner.cp.seed = seed
    except RuntimeError:
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    if hasattr(inner, "pq"):
        inner.pq.cp.seed = seed


def save_index(index: faiss.Index, ids: list[str], directory: str, info: dict[str, Any]) -> None:
    storage.make_dirs(directory)
    path = os.path.join(directory, "index.faiss")
    if storage.is_remote(path):
        storage.write_bytes(path, faiss.serialize_index(index).tobytes())
    else:
        faiss.write_index(index, path)
    write_table(pa.table({"candidate_id": pa.array(ids, pa.string())}), os.path.join(directory, "ids.parquet"),
                INDEX_IDS)
    storage.write_text(os.path.join(directory, BUILD_INFO), json.dumps(info, indent=1, sort_keys=True))


class CandidateIndex:
    """One loaded index shard with its ids (an Arrow array, row i's id at i); held once per worker process
    through Beam's Shared. Exclusions are looked up in a sorted array of the ids' bytes: a few bytes per
    candidate, no per-id Python objects."""

    def __init__(self, directory: str, nprobe: int = 0, ef_search: int = 0, fetch: int = 64,
                 device: str = "auto", search_params: str = "") -> None:
        index = _read_index(os.path.join(directory, "index.faiss"))
        self.parameters = search_params or search_parameters(index, nprobe, ef_search, fetch)
        if self.parameters:
            faiss.ParameterSpace().set_index_parameters(index, self.parameters)
        self.index, self.backend = _place(index, device)
        table = read_table(os.path.join(directory, "ids.parquet"), INDEX_IDS)
        self.ids = table.column("candidate_id").combine_chunks()
        as_raw = as_bytes(self.ids)
        self._order = np.argsort(as_raw, kind="stable")
        self._sorted = as_raw[self._order]

    def ids_of(self, rows: np.ndarray) -> pa.Array:
        """The candidate ids of `rows` (any shape) flattened row by row, null where a row is -1 (none): one
        Arrow take, the ids never leaving Arrow."""
        flat = rows.reshape(-1)
        return self.ids.take(pa.array(flat, mask=flat < 0))

    def rows_of(self, candidate_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `candidate_ids`, rows) of the given ids (bytes) that are in this shard."""
        if not len(candidate_ids) or not len(self._sorted):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(self._sorted, candidate_ids), len(self._sorted) - 1)
        found = np.flatnonzero(self._sorted[at] == candidate_ids)
        return found, self._order[at[found]]

    def banned_rows(self, excluded: pa.ListArray | Sequence[Iterable[str]]) -> np.ndarray:
        """(n, width) rows each query must not get, -2 padded: one lookup for the whole chunk's lists."""
        if not isinstance(excluded, pa.ListArray):
            excluded = pa.array([list(e) for e in excluded], pa.list_(pa.string()))
        lengths = excluded.value_lengths().fill_null(0).to_numpy()
        owner = np.repeat(np.arange(len(excluded)), lengths)
        at, rows = self.rows_of(as_bytes(excluded.flatten()))
        owner = owner[at]  # ascending: the lists' flattened order
        per_query = np.bincount(owner, minlength=len(excluded))
        ban = np.full((len(excluded), max(int(per_query.max(initial=0)), 1)), -2, np.int64)
        ban[owner, np.arange(len(owner)) - (np.cumsum(per_query) - per_query)[owner]] = rows
        return ban

    def search_excluding(self, queries: np.ndarray, excluded: pa.ListArray | Sequence[Iterable[str]], k: int,
                         delta: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(rows, similarities), each (n, k) in rank order: per query its best k candidates, skipping its
        excluded ids and, when delta > 0, anything more similar than delta. Row -1 pads a query that has
        fewer than k eligible candidates in the whole pool: the search is widened until k survive or the pool
        is exhausted, so padding means the pool ran out, never that the search stopped short."""
        n, total = len(queries), self.index.ntotal
        ban = self.banned_rows(excluded)
        width = int((ban >= 0).sum(1).max(initial=0))
        out_rows = np.full((n, k), -1, np.int64)
        out_sims = np.zeros((n, k), np.float32)
        pending = np.arange(n)
        fetch = min(total, k + width + (k if delta > 0 else 0))
        while pending.size and fetch > 0:
            whole = pending.size == n  # the usual first pass: no per-query copies
            sims, rows = self.index.search(queries if whole else queries[pending], fetch)
            keep = rows >= 0
            if width:
                keep &= ~(rows[:, :, None] == (ban if whole else ban[pending])[:, None, :]).any(-1)
            if delta > 0:
                keep &= sims <= delta
            done = (keep.sum(1) >= k) | (fetch >= total)
            into = slice(None) if whole and done.all() else pending[done]
            if not done.all():
                keep, rows, sims = keep[done], rows[done], sims[done]
            # flat positions of each query's kept columns first, in rank order, then the dropped ones
            at = np.argsort(~keep, axis=1, kind="stable")[:, :k] + (fetch * np.arange(len(keep)))[:, None]
            kept = keep.take(at)
            out_rows[into, :at.shape[1]] = np.where(kept, rows.take(at), -1)
            out_sims[into, :at.shape[1]] = np.where(kept, sims.take(at), 0.0)
            pending, fetch = pending[~done], min(total, fetch * 2)
        return out_rows, out_sims


def _read_index(path: str) -> faiss.Index:
    """FAISS reads a local file itself (2.5x faster than deserializing a copy); other filesystems through Beam."""
    if not storage.is_remote(path):
        return faiss.read_index(path)
    return faiss.deserialize_index(np.frombuffer(storage.read_bytes(path), dtype=np.uint8))


def search_backend(is_flat: bool, device: str, cuda: bool, faiss_gpus: int) -> str:
    """Where the search runs: "faiss-cpu", "faiss-gpu" or "torch" (exact search as a torch matmul + top-k on the
    GPU). "cpu", or "auto" without a GPU: the FAISS index as built. With a GPU: FAISS GPU when this build has
    it; otherwise a Flat index through torch, and any other index stays on the CPU (FAISS has no CPU->GPU path
    for it without faiss-gpu)."""
    if device == "cpu" or (device == "auto" and not cuda):
        return "faiss-cpu"
    if faiss_gpus > 0:
        return "faiss-gpu"
    return "torch" if is_flat else "faiss-cpu"


def _place(index: faiss.Index, device: str) -> tuple[Any, str]:
    import torch
    cuda = torch.cuda.is_available()
    backend = search_backend(isinstance(index, faiss.IndexFlat), device, cuda, getattr(faiss, "get_num_gpus",
                                                                                        lambda: 0)())
    if backend == "faiss-gpu":
        try:  # faiss-gpu wheels have shipped without kernels for some cards (Hopper): a failing copy falls back
            return faiss.index_cpu_to_all_gpus(index), backend
        except RuntimeError as e:
            log.info("retrieve: FAISS could not copy the index to the GPU (%s)", e)
            backend = "torch" if isinstance(index, faiss.IndexFlat) else "faiss-cpu"
    if backend == "torch":
        from judgemine.transforms.retrieve.torch_search import TorchFlatSearch
        return TorchFlatSearch(index.reconstruct_n(0, index.ntotal), "cuda" if device == "auto" else device), backend
    if device != "cpu" and cuda:
        log.info("retrieve: a %s index without FAISS GPU support searches on the CPU", type(index).__name__)
    return index, backend
