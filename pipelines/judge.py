"""Stage 5, judge: every (query, candidate) and (query, positive) pair of a retrieve chunk to a judge score."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import apache_beam as beam
import pyarrow.compute as pc
from apache_beam.ml.inference.base import RunInference

from judgemine.pipelines.errors import UserError
from judgemine.pipelines.settings import Settings
from judgemine.pipelines.stage import Counters, Stage, StageContext, query_chunks, spread_chunks
from judgemine.schemas import CANDIDATES, EMBEDDINGS, QUERIES, list_parts, read_table
from judgemine.transforms.common.candidates import PoolLookup
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.judge.backends import JUDGES
from judgemine.transforms.judge.by_similarity import AskForPositives, ScoreBySimilarity
from judgemine.transforms.judge.base import JudgeModel, JudgeSpec
from judgemine.transforms.judge.handler import JudgeHandler
from judgemine.transforms.judge.pairs import AskForChunk, BuildJudgeRequests, WriteScores
from judgemine.transforms.judge.prompt import PROMPT_VERSION
from judgemine.transforms.judge.score_cache import CachedScores, cache_files, judge_model_id


def judge_spec(settings: Settings) -> JudgeSpec:
    """The chosen backend's spec: the model, and its own options filled from the settings of the same names."""
    backend = JUDGES.get(settings.judge_backend)
    options = backend.Options(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(backend.Options)})
    model = JudgeModel(settings.judge_model, settings.judge_dtype, settings.device, settings.judge_batch_size,
                       settings.image_root, settings.prompt, settings.image_cache_bytes)
    return JudgeSpec(backend.name, model, options)


def cache_dir(settings: Settings) -> str:
    return settings.judge_cache or os.path.join(settings.output, "cache", "judge")


def needs_model(settings: Settings) -> bool:
    return JUDGES.get(settings.judge_backend).capabilities.needs_model


def check(settings: Settings) -> None:
    if settings.judge_backend == "openai" and not settings.judge_server_url:
        raise UserError("--judge-backend openai needs --judge-server-url URL")
    if needs_model(settings) and not os.path.isfile(os.path.join(settings.judge_model, "config.json")):
        raise UserError(f"judge model folder not found: {settings.judge_model} (run `make models` for the "
                                "tiny demo judge, or pass --judge-model DIR)")


def _refuse_images(ctx: StageContext) -> None:
    """A text-only judge (a cross-encoder) would score an image pair by its caption alone: refused up front."""
    ingest = ctx.input_dir("ingest")
    sides = [(os.path.join(ingest, "queries"), QUERIES, ("query_image", "pos_image")),
             (os.path.join(ingest, "candidates"), CANDIDATES, ("image",))]
    found = {folder: sum(pc.sum(pc.not_equal(t.column(c), "")).as_py() or 0 for path in list_parts(folder)
                         for t in [read_table(path, schema, list(cols))] for c in cols)
             for folder, schema, cols in sides}
    queries, candidates = found[sides[0][0]], found[sides[1][0]]
    if queries or candidates:
        raise UserError(f"--judge-backend {ctx.settings.judge_backend} reads text pairs only: {queries} query/"
                        f"positive images and {candidates} candidate images in this run; judge image pairs with a "
                        "vision-language model (--judge-backend transformers --judge-model DIR)")


def build(p: beam.Pipeline, ctx: StageContext) -> None:
    s = ctx.settings
    chunks = chunks_of("queries", list_parts(ctx.input_dir("retrieve")))
    if not needs_model(s):
        asked = spread_chunks(p, chunks) | "AskForPositives" >> beam.ParDo(
            AskForPositives(ctx.input_dir("ingest"))).with_outputs("ids", main="chunk")
        positives = asked.ids | "PositiveVectors" >> PoolLookup(os.path.join(ctx.input_dir("embed"), "candidates"),
                                                                 EMBEDDINGS, "id", ["vector"])
        _ = ({"chunk": asked.chunk, "positives": positives} | "JoinPositives" >> beam.CoGroupByKey()
             | "ScoreBySimilarity" >> beam.ParDo(ScoreBySimilarity(ctx.input_dir("ingest"), ctx.input_dir("embed"),
                                                                   ctx.directory)))
        return
    if JUDGES.get(s.judge_backend).capabilities.text_only:
        _refuse_images(ctx)
    spec = judge_spec(s)
    model_id = judge_model_id(s.judge_model, s.judge_dtype)
    asked = (spread_chunks(p, chunks)
             | "AskForChunk" >> beam.ParDo(AskForChunk(ctx.input_dir("ingest"), model_id, s.prompt.version)
                                           ).with_outputs("ids", "keys", main="chunk"))
    sides = asked.ids | "CandidateSides" >> PoolLookup(os.path.join(ctx.input_dir("ingest"), "candidates"),
                                                        CANDIDATES, "candidate_id", ["text", "image"])
    cached = asked.keys | "CachedScores" >> CachedScores(cache_files(cache_dir(s)))
    _ = ({"chunk": asked.chunk, "sides": sides, "cached": cached}
         | "JoinChunk" >> beam.CoGroupByKey()
         | "BuildPairs" >> beam.ParDo(BuildJudgeRequests(ctx.input_dir("ingest")))
         | "Judge" >> RunInference(JudgeHandler(spec))
         | "WriteScores" >> beam.ParDo(WriteScores(ctx.directory, cache_dir(s),
                                                   JUDGES.get(spec.backend).capabilities.reports)))


def count(ctx: StageContext, counters: Counters) -> dict[str, Any]:
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


def record(ctx: StageContext) -> dict[str, Any]:
    s = ctx.settings
    if not needs_model(s):
        return {"judge_backend": s.judge_backend}
    return {"judge_model": s.judge_model, "judge_backend": s.judge_backend, "prompt_version": s.prompt.version,
            "judge_model_id": judge_model_id(s.judge_model, s.judge_dtype), "cache": cache_dir(s)}


STAGE = Stage("judge", upstream=("retrieve", "embed", "ingest"),
              build=build, count=count, check=check, version=f"{PROMPT_VERSION}+3", record=record,
              throughput="pairs_judged", units=query_chunks)
