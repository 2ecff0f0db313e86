"""`judgemine plan`: what a run will cost, from its inputs and settings alone, before anything is spent. Every
model folder and input is checked on the way (as `run` checks them); the rows are parsed (no image is opened);
the embedder and the judge are timed on a few batches of the run's own texts and pairs on this machine's
device; retrieval on a Flat index of the pool's size. The judge is nearly the whole bill, so its pairs are
counted as the run will count them (K + 1 per query, or exactly, with those already in the score cache, once
retrieval is committed)."""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from judgemine.pipelines.artifacts import MissingArtifact, require_stage, stage_dir
from judgemine.pipelines.embed import check as check_embed
from judgemine.pipelines.embed import embedder_spec
from judgemine.pipelines.ingest import check as check_inputs
from judgemine.pipelines.judge import cache_dir, judge_spec
from judgemine.pipelines.judge import check as check_judge
from judgemine.pipelines.judge import needs_model
from judgemine.pipelines.settings import Settings
from judgemine.schemas import QUERIES, RETRIEVAL, list_parts, part_name, read_table
from judgemine.transforms.common.candidates import as_bytes
from judgemine.transforms.common.devices import resolve_device
from judgemine.transforms.common.sides import Side
from judgemine.transforms.common.text import normalise_text
from judgemine.transforms.ingest.readers import RowError, parse_corpus_row, parse_pair, read_rows
from judgemine.transforms.judge.score_cache import cache_files, cached_keys, judge_model_id, pair_key

SAMPLE_TEXTS, SAMPLE_QUERIES = 256, 8
BYTES_PER_SCORE = 60  # a judge part row and a cache row, compressed (measured on the demo: 40-70)


def _rows(settings: Settings) -> dict[str, Any]:
    """Valid and rejected rows of the inputs, the pool's size, and samples for the calibration."""
    pairs: list[dict[str, str]] = []
    rejected = corpus = 0
    pool: set[tuple[str, str]] = set()
    for path in settings.pairs:
        for _, raw in read_rows(path):
            try:
                pair = parse_pair(raw, settings.pairs_layout, settings.max_text_chars)
            except RowError:
                rejected += 1
                continue
            pairs.append(pair)
            pool.add((normalise_text(pair["pos_text"]), pair["pos_image"]))
    for path in settings.corpus:
        for _, raw in read_rows(path):
            try:
                row = parse_corpus_row(raw, settings.max_text_chars)
            except RowError:
                continue
            corpus += 1
            pool.add((normalise_text(row["text"]), row["image"]))
    return {"pairs": pairs, "rejected": rejected, "corpus_rows": corpus, "candidates": len(pool)}


def _rate(fn: Any, warm_up: Any, n: int) -> float:
    """Items per second of `fn()` over `n` items, after a warm-up call."""
    warm_up()
    started = time.perf_counter()
    fn()
    return n / max(time.perf_counter() - started, 1e-9)


def _calibrate_embed(settings: Settings, pairs: list[dict[str, str]]) -> tuple[float, int]:
    from judgemine.transforms.embed.backends import load_embedder
    texts = [p["query_text"] for p in pairs[:SAMPLE_TEXTS // 2]] + [p["pos_text"] for p in pairs[:SAMPLE_TEXTS // 2]]
    images = [""] * len(texts)
    embedder = load_embedder(embedder_spec(settings))
    dim = embedder.embed(texts[:2], images[:2]).shape[1]
    return _rate(lambda: embedder.embed(texts, images), lambda: embedder.embed(texts[:16], images[:16]),
                 len(texts)), dim


def _calibrate_judge(settings: Settings, pairs: list[dict[str, str]]) -> float:
    """Pairs/s on the run's own texts: a few queries, each with K + 1 positives of others as candidates (the
    shape of a chunk: a query's pairs together, so packing shares their prefix as in the run)."""
    from judgemine.transforms.judge.backends import load_judge
    judge = load_judge(judge_spec(settings))
    queries = [Side(p["query_text"], p["query_image"]) for p in pairs[:SAMPLE_QUERIES]]
    targets = [Side(p["pos_text"], p["pos_image"]) for p in pairs[:settings.top_k + 1]]
    qs = [q for q in queries for _ in targets]
    cs = [c for _ in queries for c in targets]
    return _rate(lambda: judge.score(qs, cs), lambda: judge.score(qs[:len(targets)], cs[:len(targets)]), len(qs))


def _calibrate_search(queries: int, candidates: int, dim: int) -> float:
    """Seconds of an exact top-K search of every query over the pool, from a timed sample scaled linearly."""
    import faiss
    rng = np.random.default_rng(0)
    pool = min(candidates, 20_000)
    index = faiss.IndexFlatIP(dim)
    index.add(rng.standard_normal((pool, dim), dtype=np.float32))
    sample = rng.standard_normal((256, dim), dtype=np.float32)
    started = time.perf_counter()
    index.search(sample, 64)
    return (time.perf_counter() - started) * queries / 256 * candidates / pool


def _retrieved_pairs(settings: Settings) -> tuple[int, int] | None:
    """(pairs the judge will see, those already in the score cache) once retrieval is committed, else None."""
    try:
        require_stage(settings.output, "retrieve")
    except MissingArtifact:
        return None
    cache = cached_keys(cache_files(cache_dir(settings)))
    model = judge_model_id(settings.judge_model, settings.judge_dtype)
    found = total = 0
    for path in list_parts(stage_dir(settings.output, "retrieve")):
        index = int(os.path.basename(path).split("-")[1].split(".")[0])
        queries = read_table(os.path.join(stage_dir(settings.output, "ingest"), "queries", part_name(index)), QUERIES,
                             ["query_id", "query_content_id", "pos_id"]).to_pylist()
        content = {q["query_id"]: q["query_content_id"] for q in queries}
        hits = read_table(path, RETRIEVAL, ["query_id", "candidate_id"]).to_pylist()
        judged = {h["query_id"] for h in hits}  # a query without candidates is not judged at all
        keys = [pair_key(model, settings.prompt.version, content[q["query_id"]], q["pos_id"]) for q in queries
                if q["query_id"] in judged]
        keys += [pair_key(model, settings.prompt.version, content[h["query_id"]], h["candidate_id"]) for h in hits]
        total += len(keys)
        found += int(np.isin(as_bytes(keys), cache).sum()) if keys else 0
    return total, found


def make_plan(settings: Settings) -> dict[str, Any]:
    for check in (check_inputs, check_embed, check_judge):
        check(settings)
    rows = _rows(settings)
    pairs, queries, candidates = rows["pairs"], len(rows["pairs"]), rows["candidates"]
    embed_rate, dim = _calibrate_embed(settings, pairs)
    model_judge = needs_model(settings)  # a similarity judge costs nothing: the scores come with retrieval
    judge_rate = _calibrate_judge(settings, pairs) if model_judge else None
    retrieved = _retrieved_pairs(settings) if model_judge else None
    judge_pairs, cached = retrieved if retrieved else (queries * (settings.top_k + 1), None)
    to_judge = judge_pairs - (cached or 0)
    mean_chars = float(np.mean([len(p["pos_text"]) for p in pairs])) if pairs else 0.0
    return {
        "queries": queries, "rejected_rows": rows["rejected"], "corpus_rows": rows["corpus_rows"],
        "candidates_at_most": candidates, "judge_pairs": judge_pairs, "judge_pairs_cached": cached,
        "rates": {"embed_texts_per_second": round(embed_rate, 1),
                  "judge_pairs_per_second": round(judge_rate, 1) if judge_rate else None},
        "seconds": {"embed": round((queries + candidates) / embed_rate, 1),
                    "retrieve": round(_calibrate_search(queries, candidates, dim), 1),
                    "judge": round(to_judge / judge_rate, 1) if judge_rate else 0.0},
        "bytes": {"vectors": (queries + candidates) * dim * 4, "judge_scores": judge_pairs * BYTES_PER_SCORE,
                  "shards": int(queries * (settings.num_negatives + 2) * (mean_chars + 16))},
        "device": resolve_device(settings.device), "judge_backend": settings.judge_backend,
        "embed_backend": settings.embed_backend,
    }


def plan_table(plan: dict[str, Any]) -> str:
    cached = plan["judge_pairs_cached"]
    lines = [f"queries:            {plan['queries']} ({plan['rejected_rows']} rows would be rejected)",
             f"candidates:         at most {plan['candidates_at_most']} ({plan['corpus_rows']} from the corpus)",
             "judge pairs:        " + (f"{plan['judge_pairs']} at most (K + 1 per query), cached: known after "
                                          "retrieval" if cached is None else
                                          f"{plan['judge_pairs']} retrieved, {cached} already in the cache"),
             f"measured here:      embed {plan['rates']['embed_texts_per_second']} texts/s "
             f"({plan['embed_backend']}), judge " + (f"{plan['rates']['judge_pairs_per_second']} pairs/s "
                                                     if plan['rates']['judge_pairs_per_second'] else "free ")
             + f"({plan['judge_backend']})",
             "estimated time:     " + ", ".join(f"{k} {_duration(v)}" for k, v in plan["seconds"].items())
             + f", total {_duration(sum(plan['seconds'].values()))}",
             "estimated storage:  " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in plan["bytes"].items())]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
