"""Stage 6, mine: the mining rule per query chunk, to one trainer shard per chunk (OUTPUT/shards)."""
from __future__ import annotations

import dataclasses
from typing import Any

import apache_beam as beam
import numpy as np

from judgemine.pipelines.mine.settings import MineStageSettings
from judgemine.pipelines.run.artifacts import count_rows
from judgemine.pipelines.run.stage import (
    Counters,
    Estimate,
    PlanInputs,
    Stage,
    StageContext,
    queries,
    spread_chunks,
)
from judgemine.schemas import CANDIDATES, list_parts
from judgemine.transforms.common.candidates import PoolLookup
from judgemine.transforms.common.chunks import chunks_of
from judgemine.transforms.common.rejects import WriteRejects
from judgemine.transforms.mine.rule import FILTERS, MiningRule
from judgemine.transforms.mine.shards import AskForCandidates, MineChunk

READS = ("judge", "retrieve", "embed", "ingest")
def build(p: beam.Pipeline, ctx: StageContext[MineStageSettings]) -> None:
    s = ctx.settings
    chunks = chunks_of("queries", list_parts(ctx.input("embed").folder("queries")))
    rule = MiningRule.of(s)
    asked = (spread_chunks(p, chunks, ctx.work)
             | "AskForCandidates" >> beam.ParDo(AskForCandidates(ctx.input("retrieve"))).with_outputs(
                 "ids", main="chunk"))
    sides = asked.ids | "CandidateSides" >> PoolLookup(ctx.input("ingest").folder("candidates"),
                                                        CANDIDATES, "candidate_id", ["text", "image"])
    mined = ({"chunk": asked.chunk, "sides": sides}
             | "JoinChunk" >> beam.CoGroupByKey()
             | "MineNegatives" >> beam.ParDo(MineChunk({name: ctx.input(name) for name in READS},
                                                       ctx.outputs["shards"], len(chunks), rule, s.image_root, ctx.work)
                                             ).with_outputs("rejects", main="rows"))
    _ = mined.rejects | "WriteRejects" >> WriteRejects(ctx.folder.folder("rejects"))


def count(ctx: StageContext[MineStageSettings], counters: Counters) -> dict[str, Any]:
    return {"rows": count_rows(ctx.outputs["shards"]),
            "false_negatives_filtered": counters.get("false_negatives_filtered", 0),
            **{f"skipped_{name}": counters.get(f"skipped_{name}", 0) for name in FILTERS},
            "rows_repeated": counters.get("rows_repeated", 0), "fallback_rows": counters.get("fallback_rows", 0),
            "retrieved": counters.get("retrieved", 0),
            "candidates_too_long": counters.get("candidates_too_long", 0),
            "rejected": count_rows(ctx.folder.folder("rejects"))}


def manifest(settings: MineStageSettings, record: dict[str, Any]) -> dict[str, Any]:
    """The rule as applied (beta resolved) and what each of its filters removed."""
    counts, rule = record["counts"], MiningRule.of(settings)
    return {"mining": {"rule": {**dataclasses.asdict(rule), "beta": rule.applied_beta},
                       "skipped": {name: counts.get(f"skipped_{name}", 0) for name in FILTERS},
                       "rows_repeated": counts.get("rows_repeated", 0),
                       "rows_fallback": counts.get("fallback_rows", 0)},
            "scores": {"false_negatives_filtered": counts["false_negatives_filtered"],
                       "retrieved_pairs": counts["retrieved"]}}


def estimate(settings: MineStageSettings, plan: PlanInputs) -> Estimate:
    """The shards: m negatives and the positive per query, each about as long as the positives."""
    mean_chars = float(np.mean([len(p["pos_text"]) for p in plan.pairs])) if plan.pairs else 0.0
    return Estimate(bytes={"shards": int(plan.queries * (settings.num_negatives + 2) * (mean_chars + 16))})


STAGE = Stage("mine", upstream=READS, version="4", throughput="rows", work=queries,
              build=build, count=count, publishes=("shards",), completes_run=True,
              accounting=lambda counts: {"rejected": counts["rejected"]}, manifest=manifest, estimate=estimate)
