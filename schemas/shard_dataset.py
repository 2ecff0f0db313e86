"""The shards for a PyTorch trainer, with pyarrow and torch only (no Beam on a training machine).

    ds = ShardDataset("out/demo/shards", k=8)             # fallback rows skipped, k of the stored m negatives
    loader = DataLoader(ds, batch_size=32, num_workers=2, collate_fn=collate_shards)
    batch = next(iter(loader))                            # batch["scores"]: [32, 1 + 8] float32, positive first

Files are split across DDP ranks (torch.distributed's, or `rank`/`world_size` given) and then across a
DataLoader's workers, so every row is read by exactly one worker of one rank.

A run directory (or its shards/ folder, by any path: relative, through a link, s3://) is read as its committed
mine stage lists it, never by a glob: files a run left uncommitted, or that someone put there, are not read (the
foreign ones are named in a warning). The record knows files by content, so a run copied to a training cluster
(cp -r, tar, rsync) loads like the original. Each file is checked to be the committed one as it is opened, so a
rerun that replaces the shards mid-epoch is an error, never a mix of two runs. A folder of bare shard files
outside any run is read as it is.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import IterableDataset, get_worker_info

from judgemine.schemas import storage
from judgemine.schemas.commits import committed_shards, foreign, run_of
from judgemine.schemas.digests import file_digest, identity
from judgemine.schemas.io import list_parts, parquet_file, shard_info

log = logging.getLogger(__name__)
COLUMNS = ("query_id", "query_text", "query_image", "pos_id", "pos_text", "pos_image", "pos_score", "neg_ids",
           "neg_texts", "neg_images", "neg_scores", "fallback", "dataset")
# --false-negatives-as-positives' lists, read where a shard has them (schema 1.5; empty without the setting)
EXTRA_POSITIVES = ("extra_pos_ids", "extra_pos_texts", "extra_pos_images", "extra_pos_scores")


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None or world_size is not None:
        if rank is None or world_size is None or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} of world_size {world_size}: give both, 0 <= rank < world_size")
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardDataset(IterableDataset):
    """One item per shard row: query, positive and the first `k` negatives (None: all stored; the paper trains
    on k = 8 of 10), scores as float32.

    skip_fallback: rows whose negatives are the paper's fallback (random candidates scored 1.0, above their
    positive) teach backwards targets; they are skipped unless False, and counted in `fallback_rows`.
    load_images: each non-empty image path opened as an RGB PIL image (`*_pil` fields), relative paths against
    `image_root` (default: the root recorded in each shard)."""

    def __init__(self, shards: str | Sequence[str], k: int | None = None, skip_fallback: bool = True,
                 load_images: bool = False, image_root: str | None = None, rank: int | None = None,
                 world_size: int | None = None) -> None:
        self._committed: dict[str, str] = {}  # path -> the sha256 its run's record lists
        self._verified: dict[str, list[int]] = {}  # path -> its disk identity once its content was verified
        run = run_of(shards) if isinstance(shards, str) else None
        if run is not None:
            paths, record = committed_shards(run)  # every listed file's content verified (a stat where known)
            self._committed = {p: record["files"][storage.relative(p, run)]["sha256"] for p in paths}
            self._verified = {p: identity(p) for p in paths if not storage.is_remote(p)}
            strays = foreign(run, record, "shards")
            if strays:
                log.warning("ShardDataset: ignoring files the run did not commit: %s", ", ".join(strays))
        else:
            paths = list_parts(shards) if isinstance(shards, str) else list(shards)  # s3://, gs:// through Beam
        if not paths:
            raise FileNotFoundError(f"no shards in {shards}")
        self.paths, self.skip_fallback = paths, skip_fallback
        self.load_images, self.image_root = load_images, image_root
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        infos = [shard_info(p) for p in paths]  # footers only
        self.rows = sum(i.rows for i in infos)
        self.fallback_rows = sum(i.fallback_rows for i in infos)
        self.stored = min(i.num_negatives for i in infos)
        self._roots = {p: i.image_root for p, i in zip(paths, infos)}
        self.k = self.stored if k is None else k
        if not 0 < self.k <= self.stored:
            raise ValueError(f"k = {self.k} negatives asked for, the shards store {self.stored} per row")
        if skip_fallback and self.fallback_rows:
            log.info("ShardDataset: %d of %d rows are fallback rows and are skipped (skip_fallback=False keeps them)",
                     self.fallback_rows, self.rows)

    def __len__(self) -> int:
        """Rows yielded over all ranks and workers."""
        return self.rows - (self.fallback_rows if self.skip_fallback else 0)

    def _my_files(self) -> list[str]:
        """Whole files per (rank, worker) when there are enough of them, else every file with rows strided."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        self._slot, self._slots = self.rank * workers + worker, self.world_size * workers
        if len(self.paths) >= self._slots:
            files = self.paths[self._slot::self._slots]
            self._slot, self._slots = 0, 1
            return files
        return self.paths

    def __iter__(self) -> Iterator[dict[str, Any]]:
        seen = 0
        for path in self._my_files():
            root = self.image_root if self.image_root is not None else self._roots[path]
            with parquet_file(path) as f:
                self._check_committed(path)
                columns = [*COLUMNS, *(c for c in EXTRA_POSITIVES if c in f.schema_arrow.names)]
                for batch in f.iter_batches(batch_size=1024, columns=columns):
                    for row in pa.Table.from_batches([batch]).to_pylist():
                        if self.skip_fallback and row["fallback"]:
                            continue
                        seen += 1
                        if (seen - 1) % self._slots != self._slot:
                            continue
                        yield self._item(row, root)

    def _check_committed(self, path: str) -> None:
        """The file opened is still the one the run committed (a rerun swaps in new files under the same names):
        the identity verified when the dataset was made, or else the recorded content (a file copied or
        re-permissioned since is still the committed one)."""
        if path not in self._verified or identity(path) == self._verified[path]:
            return
        if file_digest(path) != self._committed[path]:
            raise RuntimeError(f"{path} was replaced by another run after this dataset was made: make it again to "
                               "read the new run")
        self._verified[path] = identity(path)

    def _item(self, row: dict[str, Any], root: str) -> dict[str, Any]:
        k = self.k
        item = {**row, "pos_score": np.float32(row["pos_score"]),
                "neg_scores": np.asarray(row["neg_scores"][:k], np.float32),
                **{name: row[name][:k] for name in ("neg_ids", "neg_texts", "neg_images")}}
        if self.load_images:
            item["query_image_pil"] = _open(row["query_image"], root)
            item["pos_image_pil"] = _open(row["pos_image"], root)
            item["neg_images_pil"] = [_open(p, root) for p in item["neg_images"]]
        return item


def _open(path: str, root: str) -> Any:
    if not path:
        return None
    from PIL import Image
    full = path if os.path.isabs(path) or "://" in path or not root else os.path.join(root, path)
    with Image.open(full) as im:
        return im.convert("RGB")


def collate_shards(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch: texts and ids as lists, `neg_texts` as B lists of k, `pos_score` [B], `neg_scores` [B, k] and
    `scores` [B, 1 + k] (positive first, the target of the alignment loss) as float32 tensors."""
    pos = torch.from_numpy(np.asarray([i["pos_score"] for i in items], np.float32))
    neg = torch.from_numpy(np.stack([i["neg_scores"] for i in items]))
    out: dict[str, Any] = {name: [i[name] for i in items] for name in items[0]
                           if name not in ("pos_score", "neg_scores")}
    out.update(pos_score=pos, neg_scores=neg, scores=torch.cat([pos[:, None], neg], dim=1))
    return out
