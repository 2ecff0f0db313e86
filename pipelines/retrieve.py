"""Stage 4, retrieve: top-K candidates per query chunk, its exclusions honoured."""
from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
from apache_beam.utils.shared import Shared

from judgemine.pipelines.artifacts import count_rows
from judgemine.pipelines.stage import Counters, Stage, StageContext, query_chunks, spread_chunks
from judgemine.schemas import RETRIEVAL, list_parts, read_table
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.retrieve.search import RetrieveChunk


def build(p: beam.Pipeline, ctx: StageContext) -> None:
    s = ctx.settings
    chunks = chunks_of("queries", list_parts(os.path.join(ctx.input_dir("embed"), "queries")))
    _ = (spread_chunks(p, chunks)
         | "SearchIndex" >> beam.ParDo(RetrieveChunk(
             ctx.input_dir("index"), ctx.input_dir("ingest"), ctx.directory, s.top_k, s.delta, s.search_params,
             s.search_device, Shared())))


def count(ctx: StageContext, counters: Counters) -> dict[str, Any]:
    """Queries with fewer than K candidates are counted, never hidden (the pool may be too small)."""
    k = ctx.settings.top_k
    queries = count_rows(os.path.join(ctx.input_dir("embed"), "queries"))
    per_query = [v["counts"] for path in list_parts(ctx.directory)
                 for v in read_table(path, RETRIEVAL, ["query_id"]).column("query_id").value_counts().to_pylist()]
    without = queries - len(per_query)
    return {"queries": queries, "pairs": sum(per_query), "queries_without_candidates": without,
            "queries_short_of_k": without + sum(1 for c in per_query if c < k)}


STAGE = Stage("retrieve", upstream=("index", "embed", "ingest"), settings=("top_k", "delta", "search_params"),
              build=build, count=count, version="1", throughput="queries",
              units=query_chunks)
