"""Reranker training data (docs/SPEC.md section 6) as JSON Lines: pairwise (positive -> "Yes", first negative ->
"No") and listwise (the first 5 negatives with the positive at a seeded random position, `Ans: (i)`)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from judgemine.pipelines.outputs.exports.base import Exporter
from judgemine.transforms.common.options import setting
from judgemine.transforms.mine.rule import query_rng

LISTWISE_NEGATIVES = 5


def reranker_records(row: dict[str, Any], mode: str, seed: int) -> list[dict[str, Any]]:
    base = {"query_id": row["query_id"], "query_text": row["query_text"], "query_image": row["query_image"]}
    if mode == "pairwise":
        return [{**base, "candidate_text": row["pos_text"], "candidate_image": row["pos_image"], "answer": "Yes"},
                {**base, "candidate_text": row["neg_texts"][0], "candidate_image": row["neg_images"][0],
                 "answer": "No"}]
    candidates = [[t, i] for t, i in zip(row["neg_texts"][:LISTWISE_NEGATIVES], row["neg_images"][:LISTWISE_NEGATIVES])]
    at = int(query_rng(seed, row["query_id"]).integers(0, len(candidates) + 1))
    candidates.insert(at, [row["pos_text"], row["pos_image"]])
    return [{**base, "candidates": candidates, "answer": f"Ans: ({at + 1})"}]


class _Reranker(Exporter):
    suffix = "jsonl"
    mode = ""

    def write(self, rows: Iterator[dict[str, Any]], f: TextIO, k: int) -> int:
        n = 0
        for row in rows:
            for rec in reranker_records(row, self.mode, getattr(self.own, "seed", 0)):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        return n


class PairwiseExport(_Reranker):
    name = "reranker-pairwise"
    mode = "pairwise"


@dataclass(frozen=True)
class ListwiseOptions:
    seed: int = setting(0, (), "seed of the positive's position in each list")


class ListwiseExport(_Reranker):
    name = "reranker-listwise"
    mode = "listwise"
    Options = ListwiseOptions
