"""`judgemine plan`: what a run will cost, from its inputs and settings alone, before anything is spent. Every
stage's check runs (as `run` runs them); the rows are parsed (no image is opened); then each stage that declares
an estimate (pipelines/stage.py) times itself on a sample of the run's own rows on this machine's device."""
from __future__ import annotations

from typing import Any

from judgemine.pipelines.settings import Settings
from judgemine.pipelines.stage import PlanInputs
from judgemine.pipelines.stages import STAGES
from judgemine.transforms.common.devices import resolve_device
from judgemine.transforms.common.text import normalise_text
from judgemine.transforms.ingest.readers import RowError, parse_corpus_row, parse_pair, read_rows


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


def make_plan(settings: Settings) -> dict[str, Any]:
    for stage in STAGES:
        if stage.check:
            stage.check(settings)
    rows = _rows(settings)
    inputs = PlanInputs(rows["pairs"], len(rows["pairs"]), rows["candidates"])
    plan: dict[str, Any] = {
        "queries": inputs.queries, "rejected_rows": rows["rejected"], "corpus_rows": rows["corpus_rows"],
        "candidates_at_most": inputs.candidates, "rates": {}, "seconds": {}, "bytes": {}, "measured": [],
        "lines": [], "device": resolve_device(settings.device), "judge_backend": settings.judge_backend,
        "embed_backend": settings.embed_backend}
    for stage in STAGES:
        if not stage.estimate:
            continue
        estimate = stage.estimate(settings, inputs)
        plan["seconds"][stage.name] = estimate.seconds
        plan["rates"].update(estimate.rates)
        plan["bytes"].update(estimate.bytes)
        plan.update(estimate.facts)
        plan["measured"] += [estimate.measured] if estimate.measured else []
        plan["lines"] += estimate.lines
    return plan


def plan_table(plan: dict[str, Any]) -> str:
    lines = [f"queries:            {plan['queries']} ({plan['rejected_rows']} rows would be rejected)",
             f"candidates:         at most {plan['candidates_at_most']} ({plan['corpus_rows']} from the corpus)",
             *plan["lines"],
             "measured here:      " + ", ".join(plan["measured"]),
             "estimated time:     " + ", ".join(f"{k} {_duration(v)}" for k, v in plan["seconds"].items())
             + f", total {_duration(sum(plan['seconds'].values()))}",
             "estimated storage:  " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in plan["bytes"].items())]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
