"""What the report shows, read from a committed run: the manifest, the shards' numeric columns, a seeded
sample of every retrieved candidate with its judge score, and the rows a person should look at first."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from judgemine.pipelines.outputs.report.sweep import beta_sweep
from judgemine.pipelines.run.artifacts import require_stage
from judgemine.schemas import JUDGE_SCORES, RETRIEVAL, SHARDS, list_parts, num_rows, read_table, storage
from judgemine.schemas.commits import committed_shards
from judgemine.schemas.io import shard_info
from judgemine.schemas.layout import RunLayout

NUMERIC = ("pos_score", "neg_scores", "fallback", "dataset", "num_unique_negatives", "num_candidates",
           "num_false_negatives")
SCATTER_POINTS = 20_000  # retrieved candidates drawn in the rank/similarity plots (seeded sample)
SUSPICIOUS = 20


@dataclass
class ReportData:
    manifest: dict[str, Any]
    shards: pa.Table  # NUMERIC columns of every shard row
    retrieved: dict[str, np.ndarray]  # rank, similarity, score of a sample of (query, candidate) pairs
    retrieved_total: int
    suspicious: list[dict[str, Any]]
    sweep: list[dict[str, Any]]  # what each beta would remove and keep (pipelines/outputs/report/sweep.py)
    image_root: str


def _retrieved_sample(output: str, seed: int) -> tuple[dict[str, np.ndarray], int]:
    """Judge scores of retrieved candidates joined to their retrieval rank and similarity, part by part, each
    part sampled at the same seeded rate so that about SCATTER_POINTS are kept however large the run."""
    layout = RunLayout(output)
    judged, retrieved = list_parts(layout.stage("judge").path), list_parts(layout.stage("retrieve").path)
    total = sum(num_rows(p) for p in retrieved)
    rate = min(1.0, SCATTER_POINTS / max(total, 1))
    rng = np.random.default_rng(seed)
    parts = []
    for j, r in zip(judged, retrieved):
        scores = read_table(j, JUDGE_SCORES).filter(pc.invert(pc.field("is_positive")))
        table = read_table(r, RETRIEVAL).join(scores, ["query_id", "candidate_id"], join_type="inner")
        table = table.filter(pc.invert(pc.is_nan(table.column("score")))).select(["rank", "similarity", "score"])
        parts.append(table.filter(pa.array(rng.random(table.num_rows) < rate)) if rate < 1 else table)
    table = pa.concat_tables(parts) if parts else pa.table({"rank": pa.array([], pa.int32()),
                                                            "similarity": pa.array([], pa.float32()),
                                                            "score": pa.array([], pa.float32())})
    return {name: table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            for name in ("rank", "similarity", "score")}, total


def _suspicious(paths: list[str], shards: pa.Table) -> list[dict[str, Any]]:
    """Half the rows whose best negative comes closest to (or above) their positive: the margin filter keeps
    s <= s_pos - beta, so these are the likeliest false negatives it let through, or wrong positives; half the
    lowest-scored positives. Fallback rows are left out (their 1.0s are the rule's, not the judge's)."""
    pos = shards.column("pos_score").to_numpy()
    real = ~shards.column("fallback").to_numpy(zero_copy_only=False)
    negs = shards.column("neg_scores").combine_chunks() if shards.num_rows else None
    best_neg = np.full(shards.num_rows, -np.inf)
    if negs is not None and len(negs.values):  # every row holds m >= 1 negatives: a max per row, vectorised
        best_neg = np.maximum.reduceat(negs.values.to_numpy(), negs.offsets.to_numpy()[:-1])
    gap = np.where(real, pos - best_neg, np.inf)
    order = np.argsort(gap, kind="stable")
    close = order[np.isfinite(gap[order])][:SUSPICIOUS // 2].tolist()
    order = np.argsort(np.where(real, pos, np.inf), kind="stable")
    low = [i for i in order[real[order]][:SUSPICIOUS].tolist() if i not in close][:SUSPICIOUS - len(close)]
    picked = [(i, "negative above its positive" if gap[i] < 0 else f"negative within {gap[i]:.3g} of its positive")
              for i in close] + [(i, "low positive score") for i in low]
    offsets = np.cumsum([0] + [num_rows(p) for p in paths])
    rows, tables = [], {}
    for i, why in picked:
        f = int(np.searchsorted(offsets, i, side="right") - 1)
        if f not in tables:
            tables[f] = read_table(paths[f], SHARDS)
        row = tables[f].slice(i - int(offsets[f]), 1).to_pylist()[0]
        top = int(np.argmax(row["neg_scores"]))
        rows.append({"why": why, "query_id": row["query_id"], "dataset": row["dataset"],
                     "query_text": row["query_text"], "query_image": row["query_image"],
                     "pos_text": row["pos_text"], "pos_image": row["pos_image"], "pos_score": row["pos_score"],
                     "neg_text": row["neg_texts"][top], "neg_image": row["neg_images"][top],
                     "neg_score": row["neg_scores"][top], "neg_rank": row["neg_ranks"][top]})
    return rows


def read_report_data(output: str) -> ReportData:
    require_stage(output, "mine")
    manifest = json.loads(storage.read_text(RunLayout(output).manifest))
    paths, _ = committed_shards(output)
    shards = pa.concat_tables([read_table(p, SHARDS, list(NUMERIC)) for p in paths]) if paths else \
        SHARDS.empty_table().select(list(NUMERIC))
    retrieved, total = _retrieved_sample(output, manifest["settings"].get("seed", 0))
    sweep = beta_sweep(output, int(manifest["settings"]["num_negatives"]))
    return ReportData(manifest, shards, retrieved, total, _suspicious(paths, shards), sweep,
                      shard_info(paths[0]).image_root if paths else "")
