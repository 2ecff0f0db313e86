"""FlagEmbedding's fine-tuning JSON Lines (BGE): one line per query with `query`, `pos` (the positive, then any
extra positives), `neg`, `pos_scores`, `neg_scores` (its distillation targets), `prompt` (the query instruction)
and `type`. Text only."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from judgemine.pipelines.outputs.exports.base import Exporter, distinct
from judgemine.transforms.common.options import setting


@dataclass(frozen=True)
class FlagEmbeddingOptions:
    prompt: str = setting("", (), "the `prompt` field (the query instruction)")
    task_type: str = setting("normal", (), "the `type` field")


class FlagEmbeddingExport(Exporter):
    """A negative repeated to fill m (the filter left fewer) is listed once: FlagEmbedding samples from `neg`. The
    extra positives of --false-negatives-as-positives follow the positive in `pos` (FlagEmbedding samples one
    positive per step), their judge scores in `pos_scores`."""
    name = "flagembedding"
    suffix = "jsonl"
    text_only = True
    Options = FlagEmbeddingOptions

    def write(self, rows: Iterator[dict[str, Any]], f: TextIO, k: int) -> int:
        n = 0
        for row in rows:
            firsts = distinct(list(zip(row["neg_ids"], row["neg_texts"], row["neg_scores"])))
            extra_texts, extra_scores = row.get("extra_pos_texts", []), row.get("extra_pos_scores", [])
            f.write(json.dumps({"query": row["query_text"], "pos": [row["pos_text"], *extra_texts],
                                "neg": [t for _, t, _ in firsts], "pos_scores": [row["pos_score"], *extra_scores],
                                "neg_scores": [s for _, _, s in firsts], "prompt": self.own.prompt,
                                "type": self.own.task_type}, ensure_ascii=False) + "\n")
            n += 1
        return n
