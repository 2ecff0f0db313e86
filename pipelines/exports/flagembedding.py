"""FlagEmbedding's fine-tuning JSON Lines (BGE): one line per query with `query`, `pos`, `neg`, `pos_scores`,
`neg_scores` (its distillation targets), `prompt` (the query instruction) and `type`. Text only."""
from __future__ import annotations

import json
from typing import Any, Iterator, TextIO

from judgemine.pipelines.exports.base import Exporter, distinct


class FlagEmbeddingExport(Exporter):
    """A negative repeated to fill m (the filter left fewer) is listed once: FlagEmbedding samples from `neg`."""
    name = "flagembedding"
    suffix = "jsonl"
    text_only = True

    def write(self, rows: Iterator[dict[str, Any]], f: TextIO, k: int) -> int:
        n = 0
        for row in rows:
            firsts = distinct(list(zip(row["neg_ids"], row["neg_texts"], row["neg_scores"])))
            f.write(json.dumps({"query": row["query_text"], "pos": [row["pos_text"]],
                                "neg": [t for _, t, _ in firsts], "pos_scores": [row["pos_score"]],
                                "neg_scores": [s for _, _, s in firsts], "prompt": self.options.prompt,
                                "type": self.options.task_type}, ensure_ascii=False) + "\n")
            n += 1
        return n
