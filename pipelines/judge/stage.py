"""Stage 5, judge: every (query, candidate) and (query, positive) pair of a retrieve chunk to a judge score. The
chosen judge kind names the transform that does it (transforms/judge/base.py, `judging`): a judge with a model
or the retrieval's similarity differ by their registration, not here."""
from __future__ import annotations

import os
import time
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow.compute as pc

from judgemine.pipelines.judge.settings import JudgeStageSettings
from judgemine.pipelines.run.artifacts import MissingArtifact, require_stage
from judgemine.pipelines.run.errors import UserError
from judgemine.pipelines.run.stage import (
    Counters,
    Estimate,
    PlanInputs,
    Stage,
    StageContext,
    spread_chunks,
)
from judgemine.schemas import CANDIDATES, QUERIES, RETRIEVAL, list_parts, part_index, read_table
from judgemine.schemas.layout import RunLayout, StageFolder
from judgemine.transforms.common.candidates import as_bytes
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.common.devices import device_problem
from judgemine.transforms.common.model_kinds import kind_problem, random_weights
from judgemine.transforms.common.options import filled
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends import JUDGES
from judgemine.transforms.judge.base import JudgeInputs, JudgeModel, JudgeSpec
from judgemine.transforms.judge.pairs import chunk_keys
from judgemine.transforms.judge.prompt import PROMPT_VERSION
from judgemine.transforms.judge.score_cache import cache_files, cached_keys


def judge_spec(settings: JudgeStageSettings) -> JudgeSpec:
    """The chosen judge: its registered kind, the model, and its own options filled from the settings of the same
    names (unresolved: `resolved()` fixes its identity)."""
    kind = JUDGES.get(settings.judge_backend)
    model = JudgeModel(settings.judge_model, settings.judge_dtype, settings.device, settings.judge_batch_size,
                       settings.image_root, settings.prompt, settings.image_cache_bytes,
                       (settings.max_image_pixels, settings.max_image_bytes))
    return JudgeSpec(kind, model, filled(kind.Options, settings))


def cache_dir(settings: JudgeStageSettings) -> str:
    return settings.judge_cache or RunLayout(settings.output).judge_cache


def needs_model(settings: JudgeStageSettings) -> bool:
    return JUDGES.get(settings.judge_backend).capabilities.needs_model


_RESOLVED: dict[tuple[str, float], JudgeSpec] = {}  # one stage execution's judge: its build and its record


def pairs(ctx: StageContext[JudgeStageSettings]) -> tuple[int, str]:
    """The pairs to score: each query's retrieved candidates and its positive."""
    retrieve = require_stage(ctx.settings.output, "retrieve")["counts"]
    return retrieve["pairs"] + retrieve["queries"], "pairs"


def _inputs(ctx: StageContext[JudgeStageSettings]) -> JudgeInputs:
    """The stage's inputs, the judge resolved once when the stage starts: its workers verify what they load
    against that identity and its record names it, so a folder swapped later can never be recorded instead."""
    key = (ctx.folder.path, ctx.started)
    if key not in _RESOLVED:
        _RESOLVED.clear()
        _RESOLVED[key] = judge_spec(ctx.settings).resolved()
    s = ctx.settings
    return JudgeInputs(ctx.input("ingest"), ctx.input("embed"), ctx.folder, _RESOLVED[key], cache_dir(s),
                       s.judge_group_pairs, s.judge_checkpoint_seconds, ctx.work)


def check(settings: JudgeStageSettings) -> None:
    spec = judge_spec(settings)
    try:
        spec.kind.check_options(spec.options)
    except ValueError as e:
        raise UserError(str(e)) from None
    if not needs_model(settings):
        return
    if not os.path.isdir(settings.judge_model):
        raise UserError(f"judge model folder not found: {settings.judge_model} (run `make models` for the "
                        "tiny demo judge, or pass --judge-model DIR: a local folder, judgemine never downloads)")
    takers = {name: kind.capabilities.models for name, kind in JUDGES.members().items()}
    problem = (device_problem(settings.device)
               or kind_problem(settings.judge_model, spec.kind.capabilities.models,
                               "--judge-model", f"--judge-backend {settings.judge_backend}", takers))
    if problem:
        raise UserError(problem)


def _refuse_images(ctx: StageContext[JudgeStageSettings]) -> None:
    """A text-only judge (a cross-encoder) would score an image pair by its caption alone: refused up front."""
    ingest = ctx.input("ingest")
    sides = [(ingest.folder("queries"), QUERIES, ("query_image", "pos_image")),
             (ingest.folder("candidates"), CANDIDATES, ("image",))]
    found = {folder: sum(pc.sum(pc.not_equal(t.column(c), "")).as_py() or 0 for path in list_parts(folder)
                         for t in [read_table(path, schema, list(cols))] for c in cols)
             for folder, schema, cols in sides}
    queries, candidates = found[sides[0][0]], found[sides[1][0]]
    if queries or candidates:
        raise UserError(f"--judge-backend {ctx.settings.judge_backend} reads text pairs only: {queries} query/"
                        f"positive images and {candidates} candidate images in this run; judge image pairs with a "
                        "vision-language model (--judge-backend transformers --judge-model DIR)")


def build(p: beam.Pipeline, ctx: StageContext[JudgeStageSettings]) -> None:
    inputs = _inputs(ctx)
    if inputs.spec.kind.capabilities.text_only:
        _refuse_images(ctx)
    chunks = chunks_of("queries", list_parts(ctx.input("retrieve").path))
    _ = spread_chunks(p, chunks, ctx.work) | "JudgeChunks" >> inputs.spec.kind.judging()(inputs)


def count(ctx: StageContext[JudgeStageSettings], counters: Counters) -> dict[str, Any]:
    """From the stage's Beam counters; the vLLM prefix-cache token counters become the run's hit rate, the
    transformers backend's token counters the packing's saving."""
    judged, cached = counters.get("pairs_judged", 0), counters.get("pairs_cached", 0)
    repeated, similar = counters.get("pairs_repeated", 0), counters.get("pairs_scored_by_similarity", 0)
    out: dict[str, Any] = {"pairs": judged + cached + repeated + similar, "pairs_judged": judged,
                           "pairs_cached": cached, "pairs_repeated": repeated, "pairs_scored_by_similarity": similar,
                           "pairs_too_long": counters.get("pairs_too_long", 0)}
    plain = counters.get("judge_tokens_plain", 0)
    if plain:  # packed scoring: tokens run through the model, against what the same pairs cost unpacked
        out.update(judge_tokens_computed=counters["judge_tokens_computed"], judge_tokens_plain=plain,
                   packing_token_ratio=round(plain / max(counters["judge_tokens_computed"], 1), 2))
    queried = counters.get("prefix_cache_queried_tokens", 0)
    if queried:
        out["prefix_cache_hit_rate"] = round(counters.get("prefix_cache_hit_tokens", 0) / queried, 4)
        out["prefix_cache_queried_tokens"] = queried
    return out


def record(ctx: StageContext[JudgeStageSettings]) -> dict[str, Any]:
    inputs = _inputs(ctx)
    return inputs.spec.kind.described(inputs)


SAMPLE_QUERIES, SAMPLES = 4, 3  # the plan times 3 groups of 4 queries each, different queries where there are
SAMPLE_SECONDS = 1.0  # a group is timed again until this long has passed: a fast judge's 0.3 s is timer noise
BYTES_PER_SCORE = 60  # a judge part row and a cache row, compressed (measured on the demo: 40-70)


def _pairs_per_second(settings: JudgeStageSettings, pairs: list[dict[str, str]], top_k: int
                      ) -> tuple[float, list[float]]:
    """Seconds the judge takes to load, and pairs/s on the run's own texts, one rate per sample, slowest first:
    SAMPLES groups of SAMPLE_QUERIES queries (the next ones of the input each time), each with K + 1 positives of
    others as candidates (the shape of the run's groups: a query's pairs together, so packing shares their prefix
    as in the run), each scored again until SAMPLE_SECONDS have passed. Their spread (texts of other lengths, a
    machine busy or not) is the plan's range."""
    from judgemine.transforms.judge.backends import load_judge
    started = time.perf_counter()
    judge = load_judge(judge_spec(settings))
    targets = [Side(p["pos_text"], p["pos_image"]) for p in pairs[:top_k + 1]]
    judge.score([Side(pairs[0]["query_text"], pairs[0]["query_image"])] * len(targets), targets)  # warm-up
    loading = time.perf_counter() - started
    rates = []
    for sample in range(SAMPLES):
        first = sample * SAMPLE_QUERIES
        queries = [Side(p["query_text"], p["query_image"])
                   for p in (pairs[(first + i) % len(pairs)] for i in range(SAMPLE_QUERIES))]
        qs = [q for q in queries for _ in targets]
        cs = [c for _ in queries for c in targets]
        started, scored = time.perf_counter(), 0
        while not scored or time.perf_counter() - started < SAMPLE_SECONDS:
            judge.score(qs, cs)
            scored += len(qs)
        rates.append(scored / max(time.perf_counter() - started, 1e-9))
    return loading, sorted(rates)


def _retrieved_pairs(settings: JudgeStageSettings) -> tuple[int, int] | None:
    """(pairs the judge will see, those already in the score cache) once retrieval is committed, else None."""
    try:
        require_stage(settings.output, "retrieve")
    except MissingArtifact:
        return None
    cache = cached_keys(cache_files(cache_dir(settings)))
    judge, prompt = judge_spec(settings).resolved().identity, settings.prompt.identity
    layout = RunLayout(settings.output)
    ingest = layout.stage("ingest")
    found = total = 0
    for path in list_parts(layout.stage("retrieve").path):
        queries = {q["query_id"]: q for q in read_table(
            ingest.query_part(part_index(path)), QUERIES,
            ["query_id", "query_payload", "pos_id", "pos_payload"]).to_pylist()}
        hits = read_table(path, RETRIEVAL, ["query_id", "candidate_id"]).to_pylist()
        keys = chunk_keys(hits, queries, _payloads(ingest, {h["candidate_id"] for h in hits}), judge, prompt)
        total += len(keys)
        found += int(np.isin(as_bytes(keys), cache).sum()) if keys else 0
    return total, found


def _payloads(ingest: StageFolder, ids: set[str]) -> dict[str, str]:
    """{candidate id: payload} of the given pool entries (the driver's plan reads the pool's two columns)."""
    out: dict[str, str] = {}
    for path in list_parts(ingest.folder("candidates")):
        table = read_table(path, CANDIDATES, ["candidate_id", "payload"])
        out.update((c, p) for c, p in zip(table.column("candidate_id").to_pylist(),
                                          table.column("payload").to_pylist()) if c in ids)
    return out


def estimate(settings: JudgeStageSettings, plan: PlanInputs) -> Estimate:
    """The judge is nearly the whole bill: its pairs counted as the run will count them (K + 1 per query, fewer
    when the pool is smaller than K + 1, or
    exactly, with those already in the score cache, once retrieval is committed), timed here on three samples:
    the judge's loading plus the pairs at the middle rate give the estimate, at the fastest and slowest its range.
    A judge without a model (the similarity judge) costs nothing: the scores come with the retrieval. K is what
    the retrieve stage's estimate hands on."""
    top_k = plan.measured["top_k"]
    retrieved = _retrieved_pairs(settings) if needs_model(settings) else None
    per_query = min(top_k, max(plan.candidates - 1, 0)) + 1  # a query's positive is not its own negative
    pairs, cached = retrieved if retrieved else (plan.queries * per_query, None)
    line = (f"judge pairs:        {pairs} at most ({per_query} per query: the positive and min(K, pool - 1) "
            "candidates), cached: known after retrieval" if cached is None
            else f"judge pairs:        {pairs} retrieved, {cached} already in the cache")
    facts = {"judge_pairs": pairs, "judge_pairs_cached": cached}
    written = {"judge_scores": pairs * BYTES_PER_SCORE}
    if not needs_model(settings):
        return Estimate(bytes=written, rates={"judge_pairs_per_second": None}, facts=facts, lines=(line,),
                        measured=f"judge free ({settings.judge_backend})")
    if cached is not None and cached >= pairs:  # nothing left to judge: the judge is not even loaded
        return Estimate(bytes=written, rates={"judge_pairs_per_second": None}, facts=facts, lines=(line,),
                        measured="judge: every pair in the score cache")
    loading, rates = _pairs_per_second(settings, plan.pairs, top_k)
    todo, middle = pairs - (cached or 0), rates[len(rates) // 2]
    return Estimate(seconds=round(loading + todo / middle, 1), bytes=written,
                    spread=(loading + todo / rates[-1], loading + todo / rates[0]),
                    rates={"judge_pairs_per_second": round(middle, 1)}, facts=facts, lines=(line,),
                    measured=f"judge {rates[0]:.1f}-{rates[-1]:.1f} pairs/s ({settings.judge_backend})")


def manifest(settings: JudgeStageSettings, record: dict[str, Any]) -> dict[str, Any]:
    judge: dict[str, Any] = {"backend": settings.judge_backend}
    if "judge_model_id" in record:
        judge.update(path=record["judge_model"], id=record["judge_model_id"],
                     random_weights=random_weights(record["judge_model"]))
    return {"run": {"models": {"judge": judge}}}


STAGE = Stage("judge", upstream=("retrieve", "embed", "ingest"),
              build=build, count=count, check=check, version=f"{PROMPT_VERSION}+4", record=record,
              throughput="pairs_judged", work=pairs,
              manifest=manifest, estimate=estimate)
