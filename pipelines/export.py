"""Exports of the shards for other trainers: the official UniME-V2 JSON array, and reranker data
(docs/SPEC.md section 6) as JSON Lines."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from judgemine.pipelines.artifacts import require_stage
from judgemine.schemas import SHARDS, list_parts, read_table
from judgemine.transforms.mine.rule import query_rng


def shard_rows(output: str) -> Iterator[dict[str, Any]]:
    """The committed shards' rows (a mine stage that did not commit, or whose files changed, is refused)."""
    require_stage(output, "mine")
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


def reranker_records(row: dict[str, Any], mode: str, seed: int) -> list[dict[str, Any]]:
    """Pairwise: (query, positive) -> "Yes", (query, first negative) -> "No". Listwise: the first 5 negatives
    with the positive inserted at a seeded random position; the answer names it as `Ans: (i)`, 1-based."""
    base = {"query_id": row["query_id"], "query_text": row["query_text"], "query_image": row["query_image"]}
    if mode == "pairwise":
        return [{**base, "candidate_text": row["pos_text"], "candidate_image": row["pos_image"], "answer": "Yes"},
                {**base, "candidate_text": row["neg_texts"][0], "candidate_image": row["neg_images"][0],
                 "answer": "No"}]
    candidates = [[t, i] for t, i in zip(row["neg_texts"][:5], row["neg_images"][:5])]
    at = int(query_rng(seed, row["query_id"]).integers(0, len(candidates) + 1))
    candidates.insert(at, [row["pos_text"], row["pos_image"]])
    return [{**base, "candidates": candidates, "answer": f"Ans: ({at + 1})"}]


def export_reranker(output: str, destination: str, mode: str, seed: int = 0) -> tuple[int, int]:
    """(records written, fallback rows skipped): a fallback row's negatives are random, possibly positives."""
    written = skipped = 0
    tmp = destination + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in shard_rows(output):
            if row["fallback"]:
                skipped += 1
                continue
            for rec in reranker_records(row, mode, seed):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                written += 1
    os.replace(tmp, destination)
    return written, skipped
