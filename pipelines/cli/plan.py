"""`judgemine plan`: what a run will cost, from its inputs and settings alone, before anything is spent. Every
stage's check runs (as `run` runs them); the rows are parsed (no image is opened); then each stage that declares
an estimate (pipelines/run/stage.py) times itself on a sample of the run's own rows on this machine's device."""
from __future__ import annotations

from collections import Counter
from typing import Any

from judgemine.pipelines.ingest.reject_gate import FileCount, check_rejects, top_reasons, unread_line
from judgemine.pipelines.outputs.health import model_lines, models_of
from judgemine.pipelines.run.stage import PlanInputs
from judgemine.pipelines.settings import Settings, given
from judgemine.pipelines.stages import STAGES
from judgemine.transforms.common.devices import resolve_device
from judgemine.transforms.common.progress import human_seconds
from judgemine.transforms.common.text import normalise_text
from judgemine.transforms.ingest.readers import (
    PAIR_FIELDS,
    RowError,
    give_ids,
    parse_corpus_row,
    parse_pairs,
    read_rows,
    unread_fields,
)


def _rows(settings: Settings) -> dict[str, Any]:
    """Valid, rejected and repeated rows of the inputs (per file too, with the fields nothing reads), the pool's
    size, and samples for the calibration: ingest's own rules, file by file (a repeated pair is read once, another
    pair under a query id already read is a duplicate_query_id reject)."""
    pairs: list[dict[str, str]] = []
    rejected = corpus = repeated = 0
    first: dict[str, tuple[str, ...]] = {}
    pool: set[tuple[str, str]] = set()
    files: dict[str, FileCount] = {}
    for path in (*settings.pairs, *settings.corpus):
        reasons: list[str] = []
        unread: Counter[str] = Counter()
        rows = 0
        for _, raw in read_rows(path):
            try:
                if path in settings.pairs:
                    found = parse_pairs(raw, settings.pairs_layout, settings.max_text_chars, settings.fields)
                    unread.update(unread_fields(raw, settings.pairs_layout, settings.fields))
                    give_ids(found)
                    rows += len(found)
                    for pair in found:
                        content, before = tuple(pair[k] for k in PAIR_FIELDS), first.get(pair["query_id"])
                        if before is None:
                            first[pair["query_id"]] = content
                            pairs.append(pair)
                            pool.add((normalise_text(pair["pos_text"]), pair["pos_image"]))
                        elif before == content:
                            repeated += 1
                        else:
                            reasons.append("duplicate_query_id")
                else:
                    row = parse_corpus_row(raw, settings.max_text_chars)
                    corpus += 1
                    rows += 1
                    pool.add((normalise_text(row["text"]), row["image"]))
            except RowError as e:
                reasons.append(str(e))
                rows += 1
        rejected += len(reasons) if path in settings.pairs else 0
        files[path] = FileCount(rows=rows, rejected=len(reasons), reasons=top_reasons(reasons), unread=dict(unread))
    return {"pairs": pairs, "rejected": rejected, "repeated": repeated, "corpus_rows": corpus,
            "candidates": len(pool), "files": files}


def make_plan(settings: Settings) -> dict[str, Any]:
    for stage in STAGES:
        if stage.check:
            stage.check(given(stage.name, settings))
    rows = _rows(settings)
    check_rejects(rows["files"], settings.max_reject_share, settings.image_root, "nothing was run")
    inputs = PlanInputs(rows["pairs"], len(rows["pairs"]), rows["candidates"])
    plan: dict[str, Any] = {
        "queries": inputs.queries, "rejected_rows": rows["rejected"], "repeated_rows": rows["repeated"],
        "unread": unread_line(rows["files"]), "corpus_rows": rows["corpus_rows"],
        "candidates_at_most": inputs.candidates, "rates": {}, "seconds": {}, "seconds_range": {}, "bytes": {},
        "measured": [], "lines": [], "device": resolve_device(settings.device), "judge_backend": settings.judge_backend,
        "embed_backend": settings.embed_backend, "models": models_of(settings)}
    for stage in STAGES:
        if not stage.estimate:
            continue
        estimate = stage.estimate(given(stage.name, settings), inputs)
        plan["seconds"][stage.name] = estimate.seconds
        low, high = estimate.spread or (estimate.seconds, estimate.seconds)
        plan["seconds_range"][stage.name] = [round(low, 1), round(high, 1)]
        plan["rates"].update(estimate.rates)
        plan["bytes"].update(estimate.bytes)
        plan.update(estimate.facts)
        plan["measured"] += [estimate.measured] if estimate.measured else []
        plan["lines"] += estimate.lines
    return plan


def plan_table(plan: dict[str, Any]) -> str:
    named, *warnings = model_lines(plan["models"])
    lines = [f"models:             {named}", *warnings,
             f"queries:            {plan['queries']} ({plan['rejected_rows']} rows would be rejected"
             + (f", {plan['repeated_rows']} repeat a pair read before and are read once" if plan["repeated_rows"]
                else "") + ")",
             *([f"                    {plan['unread']}"] if plan["unread"] else []),
             f"candidates:         at most {plan['candidates_at_most']} ({plan['corpus_rows']} from the corpus)",
             *plan["lines"],
             "measured here:      " + ", ".join(plan["measured"]),
             "estimated time:     " + ", ".join(f"{k} {_span(*v)}" for k, v in plan["seconds_range"].items())
             + ", total " + _span(*(sum(r[i] for r in plan["seconds_range"].values()) for i in (0, 1))),
             "estimated storage:  " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in plan["bytes"].items())]
    return "\n".join(lines)


def _span(low: float, high: float) -> str:
    """A time, or its range where the samples differed: "4-7 min"."""
    a, b = human_seconds(low), human_seconds(high)
    if a == b:
        return a
    (number, unit), (_, other) = a.rsplit(" ", 1), b.rsplit(" ", 1)
    return f"{number}-{b}" if unit == other else f"{a}-{b}"
