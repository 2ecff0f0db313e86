"""Stage 3, index: FAISS inner-product indexes over the candidate vectors, one per shard, built in parallel."""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import apache_beam as beam

from judgemine.pipelines.index.settings import IndexStageSettings
from judgemine.pipelines.run.artifacts import count_rows
from judgemine.pipelines.run.errors import UserError
from judgemine.pipelines.run.stage import Counters, Stage, StageContext
from judgemine.schemas import list_parts, num_rows, storage
from judgemine.schemas.layout import StageFolder
from judgemine.transforms.index.build import BuildIndexShard
from judgemine.transforms.index.faiss_index import BUILD_INFO
from judgemine.transforms.index.index_choice import auto_factory

log = logging.getLogger(__name__)


def index_factory(settings: IndexStageSettings, embed: StageFolder) -> tuple[str, str]:
    """The factory string to build, and why: as given, or `auto`'s pick for the pool (and shard) size."""
    if settings.index_factory != "auto":
        return settings.index_factory, "as given (--index-factory)"
    pool = sum(num_rows(p) for p in list_parts(embed.folder("candidates")))
    return auto_factory(max(1, pool // settings.index_shards))


def check(settings: IndexStageSettings) -> None:
    """A factory string FAISS cannot parse is a user error before any stage runs (checked at a dimension that
    every usual PQ split divides; the real one is the embedder's)."""
    if settings.index_factory == "auto":
        return
    import faiss
    try:
        faiss.index_factory(3840, settings.index_factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else "not understood"
        raise UserError(f"--index-factory {settings.index_factory!r} is not a FAISS factory string ({reason})") \
            from None


def build(p: beam.Pipeline, ctx: StageContext[IndexStageSettings]) -> None:
    s = ctx.settings
    factory, why = index_factory(s, ctx.input("embed"))
    log.info("index: %s, %d shard(s): %s", factory, s.index_shards, why)
    _ = (p | "ListShards" >> beam.Create(list(range(s.index_shards)), reshuffle=False)
         | "SpreadShards" >> beam.Reshuffle()
         | "BuildIndexShards" >> beam.ParDo(BuildIndexShard(ctx.input("embed"), ctx.folder, factory,
                                                            s.index_shards, s.seed, s.index_train_size, ctx.work)))


def count(ctx: StageContext[IndexStageSettings], counters: Counters) -> dict[str, Any]:
    """The build settings, saved with the index (and each shard's in its build.json)."""
    shards = []
    for i in range(ctx.settings.index_shards):
        shards.append(json.loads(storage.read_text(os.path.join(ctx.folder.index_shard(i), BUILD_INFO))))
    factory, why = index_factory(ctx.settings, ctx.input("embed"))
    return {"candidates": sum(s["vectors"] for s in shards), "factory": factory, "why": why,
            "shards": len(shards), "trained_on": sum(s["trained_on"] for s in shards),
            "seconds_per_shard": [s["train_seconds"] + s["add_seconds"] for s in shards]}


STAGE = Stage("index", upstream=("embed",),
              build=build, count=count, check=check, version="2", throughput="candidates",
              work=lambda ctx: (count_rows(ctx.input("embed").folder("candidates")), "vectors"))
