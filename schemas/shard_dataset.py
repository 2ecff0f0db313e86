"""The shards as a PyTorch dataset, for trainers that do not read Parquet themselves."""
from __future__ import annotations

import glob
import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from torch.utils.data import Dataset

from judgemine.schemas.io import read_table
from judgemine.schemas.tables import SHARDS


class ShardDataset(Dataset):
    """One item per query: its text/image, the positive and the first `k` stored negatives with their judge
    scores (the paper trains with k = 8 of the 10 stored). Images stay paths: loading them is the trainer's."""

    def __init__(self, shards: str | list[str], k: int | None = None, skip_fallback: bool = False) -> None:
        paths = sorted(glob.glob(os.path.join(shards, "part-*.parquet"))) if isinstance(shards, str) else shards
        if not paths:
            raise FileNotFoundError(f"no shards in {shards}")
        table = pa.concat_tables([read_table(p, SHARDS) for p in paths])
        self.table = table.filter(pc.invert(table.column("fallback"))) if skip_fallback else table
        self.k = k

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.table.slice(i, 1).to_pylist()[0]
        k = self.k if self.k is not None else len(row["neg_ids"])
        for name in ("neg_ids", "neg_texts", "neg_images", "neg_scores", "neg_ranks", "neg_similarities"):
            row[name] = row[name][:k]
        return row
