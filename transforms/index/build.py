"""The index stage's DoFn: each index shard built by its own worker from its slice of the candidate vectors."""
from __future__ import annotations

import logging
from collections.abc import Iterable

import apache_beam as beam

from judgemine.schemas import list_parts, num_rows
from judgemine.schemas.layout import StageFolder
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.index.faiss_index import build_index, read_vectors, save_index, shard_rows

log = logging.getLogger(__name__)


class BuildIndexShard(beam.DoFn):
    """Shard s of n: its contiguous slice of the candidate vectors, indexed and written to shard-s/."""

    def __init__(self, embed: StageFolder, folder: StageFolder, factory: str, shards: int, seed: int,
                 train_size: int, work: StageWork) -> None:
        self._embed, self._folder, self._factory = embed, folder, factory
        self._shards, self._seed, self._train_size, self._work = shards, seed, train_size, work

    def setup(self) -> None:
        self._work.started()

    def process(self, shard: int) -> Iterable[int]:
        parts = list_parts(self._embed.folder("candidates"))
        rows = shard_rows([num_rows(p) for p in parts], shard, self._shards)
        ids, vectors = read_vectors(parts, rows)
        if not ids:
            pool = sum(num_rows(p) for p in parts)
            raise ValueError("the candidate pool is empty: no positive or corpus row was embedded (see rejects/ and "
                             "the embed stage's counts)" if not pool else
                             f"index shard {shard} of {self._shards} is empty: the candidate pool has {pool} vectors, "
                             f"fewer than --index-shards {self._shards}")
        index, info = build_index(vectors, self._factory, self._seed + shard, self._train_size)
        save_index(index, ids, self._folder.index_shard(shard), {**info, "shard": shard, "shards": self._shards,
                                                                "rows": list(rows)})
        log.info("index: shard %d of %d: %d vectors, %s, trained on %d", shard + 1, self._shards, len(ids),
                 self._factory, info["trained_on"])
        self._work.add(len(ids))
        yield len(ids)
