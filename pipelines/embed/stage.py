"""Stage 2, embed: every query and candidate to an L2-normalised vector, one part file per ingest chunk."""
from __future__ import annotations

import os
import time
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from judgemine.pipelines.embed.settings import EmbedStageSettings
from judgemine.pipelines.run.artifacts import count_rows
from judgemine.pipelines.run.errors import UserError
from judgemine.pipelines.run.stage import Counters, Estimate, PlanInputs, Stage, StageContext, spread_chunks
from judgemine.schemas import list_parts, storage
from judgemine.schemas.layout import SIDES
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.common.devices import device_problem
from judgemine.transforms.common.model_kinds import kind_problem, random_weights
from judgemine.transforms.common.options import filled
from judgemine.transforms.common.rejects import WriteRejects, read_rejects
from judgemine.transforms.embed.backends import EMBEDDERS
from judgemine.transforms.embed.base import EmbedderSpec
from judgemine.transforms.embed.handler import EmbedHandler
from judgemine.transforms.embed.records import CANDIDATE_POOL, ReadRecords, WriteEmbeddings


def embedder_spec(settings: EmbedStageSettings) -> EmbedderSpec:
    return EmbedderSpec(settings.embed_backend, settings.resolved_embed_model, settings.embed_batch_size,
                        settings.device, settings.embed_dtype, settings.image_root,
                        filled(EMBEDDERS.get(settings.embed_backend).Options, settings),
                        (settings.max_image_pixels, settings.max_image_bytes))


def build(p: beam.Pipeline, ctx: StageContext[EmbedStageSettings]) -> None:
    s = ctx.settings
    ingest = ctx.input("ingest")
    chunks = [c for side in SIDES for c in chunks_of(side, list_parts(ingest.folder(side)))]
    spec = embedder_spec(s)
    for side in SIDES:
        storage.make_dirs(ctx.folder.folder(side))
    reads_images = EMBEDDERS.get(spec.backend).capabilities.images
    records = (spread_chunks(p, chunks, ctx.work)
               | "ReadRecords" >> beam.ParDo(ReadRecords(s.query_prompt, s.candidate_prompt, reads_images)
                                             ).with_outputs("rejects", main="records"))
    _ = (records.records
         | "Embed" >> RunInference(EmbedHandler(spec, ctx.work))
         | "WriteEmbeddings" >> beam.ParDo(WriteEmbeddings(ctx.folder)))
    _ = records.rejects | "WriteRejects" >> WriteRejects(ctx.folder.folder("rejects"))


def count(ctx: StageContext[EmbedStageSettings], counters: Counters) -> dict[str, Any]:
    sources = [s for part in read_rejects(ctx.folder.folder("rejects"), ["source"])
               for s in part.column("source").to_pylist()]
    dropped_candidates = sum(1 for s in sources if s == CANDIDATE_POOL)
    return {"queries": count_rows(ctx.folder.folder("queries")),
            "candidates": count_rows(ctx.folder.folder("candidates")),
            "rejected_queries": len(sources) - dropped_candidates, "dropped_candidates": dropped_candidates,
            "texts_repeated": counters.get("texts_repeated", 0)}


def check(settings: EmbedStageSettings) -> None:
    try:
        model = settings.resolved_embed_model
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    if not os.path.isdir(model):
        raise UserError(f"embedder model folder not found: {model} (--embed-model DIR)")
    problem = (device_problem(settings.device)
               or kind_problem(model, EMBEDDERS.get(settings.embed_backend).capabilities.models, "--embed-model",
                               f"--embed-backend {settings.embed_backend}",
                               {name: kind.capabilities.models for name, kind in EMBEDDERS.members().items()}))
    if problem:
        raise UserError(problem)


SAMPLE_TEXTS = 256


def estimate(settings: EmbedStageSettings, plan: PlanInputs) -> Estimate:
    """Texts/s of the embedder here on the run's own texts (after a warm-up batch); the vectors' bytes."""
    from judgemine.transforms.embed.backends import load_embedder
    half = SAMPLE_TEXTS // 2
    texts = [p["query_text"] for p in plan.pairs[:half]] + [p["pos_text"] for p in plan.pairs[:half]]
    images = [""] * len(texts)
    embedder = load_embedder(embedder_spec(settings))
    dim = embedder.embed(texts[:2], images[:2]).shape[1]
    embedder.embed(texts[:16], images[:16])
    started = time.perf_counter()
    embedder.embed(texts, images)
    rate = len(texts) / max(time.perf_counter() - started, 1e-9)
    plan.measured["dim"] = dim
    return Estimate(seconds=round((plan.queries + plan.candidates) / rate, 1),
                    bytes={"vectors": (plan.queries + plan.candidates) * dim * 4},
                    rates={"embed_texts_per_second": round(rate, 1)},
                    measured=f"embed {rate:.1f} texts/s ({settings.embed_backend})")


def manifest(settings: EmbedStageSettings, record: dict[str, Any]) -> dict[str, Any]:
    path = settings.resolved_embed_model
    return {"run": {"models": {"embedder": {"backend": settings.embed_backend, "path": path,
                                            "random_weights": random_weights(path)}}}}


STAGE = Stage("embed", upstream=("ingest",), build=build, count=count, check=check, version="4",
              throughput="candidates", accounting=lambda counts: {"rejected": counts["rejected_queries"]},
              manifest=manifest, estimate=estimate,
              work=lambda ctx: (sum(count_rows(ctx.input("ingest").folder(side)) for side in SIDES), "vectors"))
