"""Batches from the retrieval graph (pipelines/outputs/exports/graph_batches.py): Parquet of `batch`, `anchor`,
`positive`, `query_id`, `pos_id`, one row per query in batch order. Read it without shuffling, batch_size rows at
a time (sentence-transformers: `datasets.load_dataset("parquet", ...)`, keep `anchor` and `positive`, and a
sequential batch sampler), so each step's in-batch negatives are the batch's other positives. Text only."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from judgemine.pipelines.outputs.exports.base import Exporter, distinct
from judgemine.pipelines.outputs.exports.graph_batches import graph_batches
from judgemine.pipelines.run.artifacts import require_stage
from judgemine.schemas import JUDGE_SCORES, list_parts, read_table, storage
from judgemine.schemas.layout import RunLayout
from judgemine.transforms.common.options import above, setting
from judgemine.transforms.mine.rule import MiningRule, likely_false_negatives

SCHEMA = pa.schema([pa.field("batch", pa.int64(), nullable=False), pa.field("anchor", pa.string(), nullable=False),
                    pa.field("positive", pa.string(), nullable=False),
                    pa.field("query_id", pa.string(), nullable=False), pa.field("pos_id", pa.string(), nullable=False)])


@dataclass(frozen=True)
class BatchesOptions:
    batch_size: int = setting(64, (), "queries per batch (B3 trained with 64)", range=above(1))


class BatchesExport(Exporter):
    """Fallback rows are skipped by default, as in every format but unime: their negatives are random."""
    name = "batches"
    suffix = "parquet"
    binary = True
    text_only = True
    Options = BatchesOptions
    dropped_as = "left out of every batch (too few rows fit beside them: false negatives or the same positive)"

    def prepare(self, output: str) -> None:
        """Each query's likely false negatives: the judge stage's scores under the run's own mining rule."""
        require_stage(output, "judge")  # every part in place with the content its record lists, none foreign
        layout = RunLayout(output)
        rule = MiningRule(**json.loads(storage.read_text(layout.manifest))["mining"]["rule"])
        self._false: dict[str, set[str]] = {}
        for part in list_parts(layout.stage("judge").path):
            scores = read_table(part, JUDGE_SCORES).to_pylist()
            positive = {r["query_id"]: r["score"] for r in scores if r["is_positive"]}
            by_query: dict[str, list[tuple[str, float]]] = {}
            for r in scores:
                if not r["is_positive"]:
                    by_query.setdefault(r["query_id"], []).append((r["candidate_id"], r["score"]))
            for qid, found in by_query.items():
                removed = likely_false_negatives(np.asarray([s for _, s in found]), positive.get(qid, float("nan")),
                                                 rule)
                self._false[qid] = {c for (c, _), gone in zip(found, removed) if gone}

    def write(self, rows: Iterator[dict[str, Any]], f: BinaryIO, k: int) -> int:
        kept = [(r["query_id"], r["query_text"], r["pos_id"], r["pos_text"], distinct(r["neg_ids"])) for r in rows]
        owner: dict[str, int] = {}
        for i, (_, _, pos, _, _) in enumerate(kept):
            owner.setdefault(pos, i)
        neighbours = [[owner[c] for c in negs if c in owner and owner[c] != i]
                      for i, (_, _, _, _, negs) in enumerate(kept)]
        forbidden = [{owner[c] for c in self._false.get(qid, ()) if c in owner}
                     for qid, _, _, _, _ in kept]
        batched = graph_batches([pos for _, _, pos, _, _ in kept], neighbours, forbidden, self.own.batch_size)
        self.dropped = len(batched.left_out)
        table = pa.table({"batch": batched.batch, "anchor": [kept[i][1] for i in batched.order],
                          "positive": [kept[i][3] for i in batched.order],
                          "query_id": [kept[i][0] for i in batched.order],
                          "pos_id": [kept[i][2] for i in batched.order]}, schema=SCHEMA)
        pq.write_table(table, f)
        return table.num_rows
