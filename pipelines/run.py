"""The stages in order, each skipped when its artifacts are up to date with the settings and its inputs."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import embed, ingest, judge, mine, retrieve
from pipelines.artifacts import MissingArtifact, is_up_to_date, require_stage
from pipelines.settings import Settings

Runner = Callable[[Settings, PipelineOptions], dict[str, Any]]
STAGE_RUNNERS: dict[str, tuple[Callable[[Settings], str], Runner]] = {
    "ingest": (ingest.fingerprint, ingest.run_ingest),
    "embed": (embed.fingerprint, embed.run_embed),
    "index": (retrieve.fingerprint_index, retrieve.run_index),
    "retrieve": (retrieve.fingerprint_retrieve, retrieve.run_retrieve),
    "judge": (judge.fingerprint, judge.run_judge),
    "mine": (mine.fingerprint, mine.run_mine),
}
log = logging.getLogger("judgemine")


def run_stage(name: str, settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    return STAGE_RUNNERS[name][1](settings, options)


def run_all(settings: Settings, options: PipelineOptions) -> dict[str, dict[str, Any]]:
    """Runs every stage that is not up to date; returns {stage: {"seconds", "skipped"}}."""
    report: dict[str, dict[str, Any]] = {}
    for name, (fingerprint, runner) in STAGE_RUNNERS.items():
        started = time.time()
        if not settings.force and is_up_to_date(settings.output, name, fingerprint(settings)):
            log.info("%s: up to date, skipped", name)
            report[name] = {"seconds": 0.0, "skipped": True}
            continue
        runner(settings, options)
        report[name] = {"seconds": round(time.time() - started, 2), "skipped": False}
        log.info("%s: done in %.2fs", name, report[name]["seconds"])
    return report


def stage_status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per stage: "up to date", "stale" (complete, but for other settings or inputs, or downstream of a stage
    that is not up to date: `run` would redo it), or "missing"."""
    out: dict[str, dict[str, Any]] = {}
    upstream_ok = True
    for name, (fingerprint, _) in STAGE_RUNNERS.items():
        try:
            record = require_stage(settings.output, name)
        except MissingArtifact:
            out[name] = {"state": "missing"}
            upstream_ok = False
            continue
        try:
            current = upstream_ok and record["fingerprint"] == fingerprint(settings)
        except (FileNotFoundError, ValueError):  # an input file gone: the stage cannot be checked, so redo it
            current = False
        out[name] = {"state": "up to date" if current else "stale", "seconds": record.get("seconds")}
        upstream_ok = current
    return out
