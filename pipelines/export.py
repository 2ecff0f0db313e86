"""Exports of the shards for other trainers: the official UniME-V2 JSON array."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from pipelines.artifacts import list_parts
from schemas import SHARDS, read_table


def shard_rows(output: str) -> Iterator[dict[str, Any]]:
    parts = list_parts(os.path.join(output, "shards"))
    if not parts:
        raise FileNotFoundError(f"no shards under {output}/shards: run `judgemine run` first")
    for path in parts:
        yield from read_table(path, SHARDS).to_pylist()


def unime_record(row: dict[str, Any]) -> dict[str, Any]:
    """One shard row as a record of the official trainer (GaryGuTC/UniME-v2 data/example_data.json)."""
    return {"query_text": row["query_text"], "query_image": row["query_image"], "pos_text": row["pos_text"],
            "pos_image": row["pos_image"], "query_pos_scores": row["pos_score"],
            "hard_negatives": [[t, i] for t, i in zip(row["neg_texts"], row["neg_images"])],
            "hard_negatives_scores": row["neg_scores"]}


def export_unime(output: str, destination: str) -> int:
    records = [unime_record(r) for r in shard_rows(output)]
    tmp = destination + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(records, f, ensure_ascii=False, indent=1)
    os.replace(tmp, destination)
    return len(records)
