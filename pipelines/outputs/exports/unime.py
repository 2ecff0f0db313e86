"""The official UniME-V2 JSON array (GaryGuTC/UniME-v2 data/example_data.json), written record by record."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from judgemine.pipelines.outputs.exports.base import Exporter


def unime_record(row: dict[str, Any]) -> dict[str, Any]:
    return {"query_text": row["query_text"], "query_image": row["query_image"], "pos_text": row["pos_text"],
            "pos_image": row["pos_image"], "query_pos_scores": row["pos_score"],
            "hard_negatives": [[t, i] for t, i in zip(row["neg_texts"], row["neg_images"])],
            "hard_negatives_scores": row["neg_scores"]}


class UnimeExport(Exporter):
    """Fallback rows are kept by default: the paper's data has them (its rule scores their negatives 1.0) and
    the official format has no field to flag them; --skip-fallback leaves them out."""
    name = "unime"
    suffix = "json"
    skips_fallback = False

    def write(self, rows: Iterator[dict[str, Any]], f: TextIO, k: int) -> int:
        n = 0
        f.write("[")
        for row in rows:
            f.write(("," if n else "") + "\n" + json.dumps(unime_record(row), ensure_ascii=False))
            n += 1
        f.write("\n]\n")
        return n
