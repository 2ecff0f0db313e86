"""Parquet as sentence-transformers' `mine_hard_negatives` writes each of its `output_format`s, for its trainers
and `datasets.load_dataset("parquet", ...)`: triplet (anchor, positive, negative: a row per distinct negative),
n-tuple (anchor, positive, negative_1 .. negative_k), labeled-pair (anchor, positive, label: the positive then
each distinct negative, labelled 1 and 0), labeled-list (anchor, [positive, negatives...], [1, 0, ...]); with
`--scores` (its `output_scores`) the judge's scores instead of the labels, or beside them: triplet and n-tuple
gain `scores` (the positive's first), labeled-pair's `label` becomes `score`, labeled-list's `labels` `scores`.
Negatives are distinct in every row, as the peer writes them: an n-tuple row needs k distinct negatives, and a
row with fewer (its filter left fewer than k candidates, which the shards repeat to fill m, SPEC 5) is dropped
and counted, as `mine_hard_negatives` drops a query short of `num_negatives`. Text only."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from judgemine.pipelines.outputs.exports.base import Exporter, distinct
from judgemine.transforms.common.options import setting

BATCH = 1024


Layout = Literal["triplet", "n-tuple", "labeled-pair", "labeled-list", "n-tuple-scores"]


@dataclass(frozen=True)
class SentenceTransformersOptions:
    layout: Layout = setting("n-tuple", (), "mine_hard_negatives' output_format (n-tuple-scores: n-tuple with "
                             "--scores, its older name)")
    scores: bool = setting(False, (), "mine_hard_negatives' output_scores: the judge's scores (the positive's "
                           "first) beside or instead of the labels")


class SentenceTransformersExport(Exporter):
    name = "sentence-transformers"
    suffix = "parquet"
    binary = True
    text_only = True
    Options = SentenceTransformersOptions

    @property
    def _layout(self) -> str:
        return "n-tuple" if self.own.layout == "n-tuple-scores" else self.own.layout

    @property
    def _scores(self) -> bool:
        return self.own.scores or self.own.layout == "n-tuple-scores"

    def _schema(self, k: int) -> pa.Schema:
        layout, scores = self._layout, self._scores
        text, floats = pa.string(), pa.list_(pa.float64())
        fields = [pa.field("anchor", text)]
        if layout == "triplet":
            fields += [pa.field("positive", text), pa.field("negative", text)]
        elif layout == "n-tuple":
            fields += [pa.field("positive", text), *(pa.field(f"negative_{i}", text) for i in range(1, k + 1))]
        elif layout == "labeled-pair":
            return pa.schema([*fields, pa.field("positive", text),
                              pa.field("score", pa.float64()) if scores else pa.field("label", pa.int64())])
        else:
            return pa.schema([*fields, pa.field("positive", pa.list_(text)),
                              pa.field("scores", floats) if scores else pa.field("labels", pa.list_(pa.int64()))])
        return pa.schema([*fields, *([pa.field("scores", floats)] if scores else [])])

    def _records(self, row: dict[str, Any], k: int) -> list[dict[str, Any]]:
        anchor, positive, pos_score = row["query_text"], row["pos_text"], float(row["pos_score"])
        negatives = [(text, float(score)) for _, text, score in
                     distinct(list(zip(row["neg_ids"], row["neg_texts"], row["neg_scores"])))]
        layout, scores = self._layout, self._scores
        if layout == "triplet":
            return [{"anchor": anchor, "positive": positive, "negative": text,
                     **({"scores": [pos_score, score]} if scores else {})} for text, score in negatives]
        if layout == "n-tuple":
            if len(negatives) < k:
                self.dropped += 1
                return []
            return [{"anchor": anchor, "positive": positive,
                     **{f"negative_{i}": text for i, (text, _) in enumerate(negatives, start=1)},
                     **({"scores": [pos_score, *(score for _, score in negatives)]} if scores else {})}]
        if layout == "labeled-pair":
            key = "score" if scores else "label"
            return [{"anchor": anchor, "positive": positive, key: pos_score if scores else 1},
                    *({"anchor": anchor, "positive": text, key: score if scores else 0} for text, score in negatives)]
        return [{"anchor": anchor, "positive": [positive, *(text for text, _ in negatives)],
                 **({"scores": [pos_score, *(score for _, score in negatives)]} if scores
                    else {"labels": [1] + [0] * len(negatives)})}]

    def write(self, rows: Iterator[dict[str, Any]], f: BinaryIO, k: int) -> int:
        schema = self._schema(k)
        n = 0
        pending: list[dict[str, Any]] = []
        with pq.ParquetWriter(f, schema, compression="zstd") as writer:
            for row in rows:
                pending += self._records(row, k)
                if len(pending) >= BATCH:
                    writer.write_table(pa.Table.from_pylist(pending, schema=schema))
                    n, pending = n + len(pending), []
            if pending:
                writer.write_table(pa.Table.from_pylist(pending, schema=schema))
                n += len(pending)
        return n
