"""Stage 4, retrieve: top-K candidates per query chunk, its exclusions honoured: every (chunk, index shard)
searched on its own, then each chunk's results merged; with one index shard (the default) each chunk's result is
written where it was searched."""
from __future__ import annotations

import time
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.utils.shared import Shared

from judgemine.pipelines.retrieve.settings import RetrieveStageSettings
from judgemine.pipelines.run.artifacts import count_rows
from judgemine.pipelines.run.errors import UserError
from judgemine.pipelines.run.stage import (
    Counters,
    Estimate,
    PlanInputs,
    Stage,
    StageContext,
    queries,
    spread_chunks,
)
from judgemine.schemas import RETRIEVAL, footer, list_parts, storage
from judgemine.schemas.layout import is_index_shard
from judgemine.schemas.tables import QUERIES_KEY, SHORT_OF_K_KEY, WITHOUT_CANDIDATES_KEY
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.common.devices import device_problem
from judgemine.transforms.retrieve.search import SearchAndWrite, SearchShard, SearchSpec, WriteRetrieval


def build(p: beam.Pipeline, ctx: StageContext[RetrieveStageSettings]) -> None:
    s = ctx.settings
    shards = len([d for d in storage.children(ctx.input("index").path) if is_index_shard(d)])
    chunks = chunks_of("queries", list_parts(ctx.input("embed").folder("queries")))
    search = SearchSpec(ctx.input("index"), ctx.input("ingest"), s.top_k, s.delta, s.nprobe, s.ef_search,
                        s.search_params, s.search_device)
    tasks = spread_chunks(p, [(c, shard) for c in chunks for shard in range(shards)], ctx.work)
    if shards == 1:
        _ = tasks | "SearchAndWrite" >> beam.ParDo(SearchAndWrite(ctx.folder, search, Shared(), ctx.work))
        return
    _ = (tasks
         | "SearchIndexShards" >> beam.ParDo(SearchShard(search, Shared(), ctx.work))
         | "GroupByChunk" >> beam.GroupByKey()
         | "MergeShards" >> beam.ParDo(WriteRetrieval(ctx.folder, s.top_k, shards, ctx.work)))


def count(ctx: StageContext[RetrieveStageSettings], counters: Counters) -> dict[str, Any]:
    """Queries with fewer than K candidates are counted, never hidden (the pool may be too small); from each
    part's footer, checked against the queries embed wrote."""
    queries = count_rows(ctx.input("embed").folder("queries"))
    footers = [footer(path, RETRIEVAL) for path in list_parts(ctx.folder.path)]
    counted = sum(int(meta[QUERIES_KEY]) for _, meta in footers)
    if counted != queries:
        raise RuntimeError(f"retrieve: its parts hold {counted} queries, embed wrote {queries}")
    return {"queries": queries, "pairs": sum(rows for rows, _ in footers),
            "queries_without_candidates": sum(int(meta[WITHOUT_CANDIDATES_KEY]) for _, meta in footers),
            "queries_short_of_k": sum(int(meta[SHORT_OF_K_KEY]) for _, meta in footers)}


def estimate(settings: RetrieveStageSettings, plan: PlanInputs) -> Estimate:
    """Seconds of an exact top-K search of every query over the pool, from a timed sample scaled linearly; K
    handed on to the judge's estimate."""
    import faiss
    plan.measured["top_k"] = settings.top_k
    rng = np.random.default_rng(0)
    dim, pool = plan.measured.get("dim", 384), min(plan.candidates, 20_000)
    index = faiss.IndexFlatIP(dim)
    index.add(rng.standard_normal((max(pool, 1), dim), dtype=np.float32))
    sample = rng.standard_normal((256, dim), dtype=np.float32)
    started = time.perf_counter()
    index.search(sample, 64)
    return Estimate(seconds=round((time.perf_counter() - started) * plan.queries / 256
                                  * plan.candidates / max(pool, 1), 1))


def check(settings: RetrieveStageSettings) -> None:
    problem = device_problem(settings.search_device, "--search-device")
    if problem:
        raise UserError(problem)


STAGE = Stage("retrieve", upstream=("index", "embed", "ingest"), check=check,
              build=build, count=count, version="2", throughput="queries", work=queries, estimate=estimate)
