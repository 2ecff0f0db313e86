"""Stage 6, mine: the mining rule per query chunk, to one trainer shard per chunk (OUTPUT/shards)."""
from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
from apache_beam.utils.shared import Shared

from judgemine.pipelines.artifacts import count_rows
from judgemine.pipelines.stage import Counters, Stage, StageContext, query_chunks, spread_chunks
from judgemine.schemas import REJECTS, list_parts, read_table
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.common.rejects import WriteRejects
from judgemine.transforms.mine.rule import MiningRule
from judgemine.transforms.mine.shards import MineChunk

READS = ("judge", "retrieve", "embed", "ingest")


def build(p: beam.Pipeline, ctx: StageContext) -> None:
    s = ctx.settings
    chunks = chunks_of("queries", list_parts(os.path.join(ctx.input_dir("embed"), "queries")))
    rule = MiningRule(s.num_negatives, s.beta, s.step, s.seed, s.on_no_negatives)
    mined = (spread_chunks(p, chunks)
             | "MineNegatives" >> beam.ParDo(MineChunk({name: ctx.input_dir(name) for name in READS},
                                                       ctx.outputs["shards"], len(chunks), rule, Shared())
                                             ).with_outputs("rejects", main="rows"))
    _ = mined.rejects | "WriteRejects" >> WriteRejects(os.path.join(ctx.directory, "rejects.parquet"))


def count(ctx: StageContext, counters: Counters) -> dict[str, Any]:
    return {"rows": count_rows(ctx.outputs["shards"]),
            "false_negatives_filtered": counters.get("false_negatives_filtered", 0),
            "retrieved": counters.get("retrieved", 0),
            "candidates_too_long": counters.get("candidates_too_long", 0),
            "rejected": read_table(os.path.join(ctx.directory, "rejects.parquet"), REJECTS, ["reason"]).num_rows}


STAGE = Stage("mine", upstream=READS, version="2", throughput="rows", units=query_chunks,
              settings=("num_negatives", "beta", "step", "seed", "on_no_negatives"),
              build=build, count=count, publishes=("shards",))
