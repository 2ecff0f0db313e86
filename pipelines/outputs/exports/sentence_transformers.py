"""Parquet as sentence-transformers' `mine_hard_negatives` writes its `output_format`s, for its trainers and
`datasets.load_dataset("parquet", ...)`: triplet (anchor, positive, negative: a row per distinct negative),
n-tuple (anchor, positive, negative_1 .. negative_k), n-tuple-scores (the same plus `scores`: [positive,
negative_1, ..., negative_k], the input of its distillation losses). Text only."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from judgemine.pipelines.outputs.exports.base import Exporter, distinct
from judgemine.transforms.common.options import setting

BATCH = 1024


Layout = Literal["triplet", "n-tuple", "n-tuple-scores"]


@dataclass(frozen=True)
class SentenceTransformersOptions:
    layout: Layout = setting("n-tuple", (), "mine_hard_negatives' output_format (n-tuple-scores adds `scores`, "
                             "positive first)")


class SentenceTransformersExport(Exporter):
    name = "sentence-transformers"
    suffix = "parquet"
    binary = True
    text_only = True
    Options = SentenceTransformersOptions

    def _schema(self, k: int) -> pa.Schema:
        layout = self.own.layout
        names = ["anchor", "positive", *(["negative"] if layout == "triplet" else
                                         [f"negative_{i}" for i in range(1, k + 1)])]
        fields = [pa.field(n, pa.string()) for n in names]
        if layout == "n-tuple-scores":
            fields.append(pa.field("scores", pa.list_(pa.float32())))
        return pa.schema(fields)

    def _records(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        base = {"anchor": row["query_text"], "positive": row["pos_text"]}
        if self.own.layout == "triplet":
            return [{**base, "negative": t} for _, t in distinct(list(zip(row["neg_ids"], row["neg_texts"])))]
        out = {**base, **{f"negative_{i}": t for i, t in enumerate(row["neg_texts"], start=1)}}
        if self.own.layout == "n-tuple-scores":
            out["scores"] = [row["pos_score"], *row["neg_scores"]]
        return [out]

    def write(self, rows: Iterator[dict[str, Any]], f: BinaryIO, k: int) -> int:
        schema = self._schema(k)
        n = 0
        pending: list[dict[str, Any]] = []
        with pq.ParquetWriter(f, schema, compression="zstd") as writer:
            for row in rows:
                pending += self._records(row)
                if len(pending) >= BATCH:
                    writer.write_table(pa.Table.from_pylist(pending, schema=schema))
                    n, pending = n + len(pending), []
            if pending:
                writer.write_table(pa.Table.from_pylist(pending, schema=schema))
                n += len(pending)
        return n
