"""The one runner of every stage: fingerprint, temporary directories, the Beam pipeline, counts from Beam
counters and the written artifacts, then the commit (pipelines/run/commit.py): old record removed, directories
swapped in, the run-level outputs after the last stage, and the new record, listing every file, written last."""
from __future__ import annotations

import contextlib
import gc
import logging
import time
import uuid
from typing import Any

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from judgemine.pipelines.outputs.health import model_lines, models_of
from judgemine.pipelines.outputs.publish import publish_run
from judgemine.pipelines.run import interrupts
from judgemine.pipelines.run.artifacts import (
    DamagedArtifact,
    MissingArtifact,
    chain_fingerprint,
    published_files,
    require_stage,
    stage_record,
    uncommit,
    write_json,
)
from judgemine.pipelines.run.commit import fault_point, swap_in, temporary_dir
from judgemine.pipelines.run.fingerprints import settings_fingerprint
from judgemine.pipelines.run.lock import check_held
from judgemine.pipelines.run.progress import StageProgress
from judgemine.pipelines.run.runners import check_job_service, default_runner, ended, watch_seconds
from judgemine.pipelines.run.stage import Counters, Stage, StageContext
from judgemine.pipelines.settings import Settings, given
from judgemine.pipelines.stages import BY_NAME, STAGES
from judgemine.schemas import storage
from judgemine.schemas.commits import commit_id
from judgemine.schemas.digests import take_written
from judgemine.schemas.layout import RunLayout, StageFolder
from judgemine.transforms.common.memory import release_memory
from judgemine.transforms.common.progress import StageWork

log = logging.getLogger(__name__)


def fingerprint(stage: Stage, settings: Settings, inputs: dict[str, str] | None = None) -> str:
    """Upstream commits (their fingerprints and file contents), then the settings that shape the stage (models
    by content), its input files and its logic version."""
    parts = [commit_id(require_stage(settings.output, name)) for name in stage.upstream]
    parts.append(settings_fingerprint(settings, stage.name))
    if stage.inputs:
        parts.append(repr(sorted((stage.inputs(given(stage.name, settings)) if inputs is None else inputs).items())))
    if stage.version:
        parts.append(stage.version)
    return chain_fingerprint(*parts)


def _counters(result: Any, stage: str) -> Counters:
    out: Counters = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(f"judgemine.{stage}"))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def _finished(p: beam.Pipeline) -> Any:
    """The pipeline run to its end; on any way out (an error, a signal, workers that failed) the job is
    cancelled, so a runner elsewhere (a job service, a cluster) does not go on with it."""
    result = p.run()
    try:
        result.wait_until_finish()
    except BaseException as e:
        with contextlib.suppress(Exception):
            result.cancel()
        plain = ended(e)
        if plain is e:
            raise
        raise plain from e
    return result


def run_stage(stage: Stage, settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    """Runs one stage into temporary directories, then commits it: until its new record is written the stage
    does not exist for any reader, so a kill at any step leaves nothing a reader would trust."""
    started = time.time()
    own = given(stage.name, settings)
    if stage.check:
        stage.check(own)
    interrupts.running = (stage.name, settings.output)
    inputs = stage.inputs(own) if stage.inputs else None
    fp = fingerprint(stage, settings, inputs)
    out = settings.output
    layout = RunLayout(out)
    finals = {stage.name: layout.stage(stage.name).path, **{n: layout.published(n) for n in stage.publishes}}
    timeout = watch_seconds(options, settings.worker_timeout)
    check_job_service(options)
    with contextlib.ExitStack() as stack:
        tmps = {name: stack.enter_context(temporary_dir(final)) for name, final in finals.items()}
        work = stack.enter_context(temporary_dir(f"{layout.stage(stage.name).path}.work-{uuid.uuid4().hex[:8]}"))
        ctx = StageContext(own, StageFolder(tmps[stage.name]), {n: tmps[n] for n in stage.publishes}, started,
                           StageWork(work))
        total, noun = stage.work(ctx)
        # What is alive before the pipeline (imports, earlier stages) is left out of its garbage collections and
        # of the collection after it: a full collection walks those ~300k objects, 0.11 s a stage in all, 0.004 s
        # frozen. Unfrozen then, to be collected as usual (at exit too).
        gc.freeze()
        try:
            with StageProgress(stage.name, work, total, noun, timeout):
                p = beam.Pipeline(runner=default_runner(options), options=options)
                stage.build(p, ctx)
                counters = _counters(_finished(p), stage.name)
            del p
            release_memory()  # a one-process run: the next stage starts from what this one freed
        finally:
            gc.unfreeze()
            storage.remove(work)
        counts = stage.count(ctx, counters)
        extra = {**({"inputs": inputs} if inputs is not None else {}), **(stage.record(ctx) if stage.record else {})}
        record = stage_record(stage.name, fp, started, counts, counters, stage.throughput, **extra)
        written = {path.replace(tmps[name], finals[name], 1): digest for name in finals
                   for path, digest in take_written(tmps[name]).items()}
        check_held(out)
        uncommit(out, stage.name)
        fault_point(f"{stage.name}:uncommitted")
        if inputs is not None:  # the last moment before anything is swapped in
            _unchanged_inputs(stage, inputs, stage.inputs(own) if stage.inputs else {})
        for name, final in finals.items():
            swap_in(tmps[name], final, f"{stage.name}:{name}")
    published = list(finals.values())
    if stage.completes_run:
        published += publish_run(settings, record, options)
    record["files"] = published_files(out, published, written)
    write_json(layout.stage(stage.name).record, record)
    return record


def _unchanged_inputs(stage: Stage, before: dict[str, str], after: dict[str, str]) -> None:
    """The input files a stage read are the ones its record will name: a file replaced or rewritten while the
    stage read it fails the stage before anything is committed (its rows may be a mix of two files)."""
    changed = sorted(path for path in before if after.get(path) != before[path])
    if changed:
        path = changed[0]
        raise RuntimeError(f"{stage.name}: {path} changed while the stage read it (sha256 {before[path][:12]} at the "
                           f"start, {after.get(path, 'gone')[:12]} now): nothing was committed; rerun once the file "
                           "stays put")


def run_one(name: str, settings: Settings, options: PipelineOptions) -> dict[str, Any]:
    stage = BY_NAME[name]
    record = run_stage(stage, settings, options)
    if stage.gate:
        stage.gate(given(name, settings), record)
    return record


def run_all(settings: Settings, options: PipelineOptions) -> dict[str, dict[str, Any]]:
    """Runs every stage that is not up to date, after checking every model and input those stages need;
    returns {stage: {"seconds", "skipped"}}."""
    states = {name: row["state"] for name, row in stage_status(settings).items()}
    for stage in STAGES:  # every stage that may run (not up to date, or downstream of one), before any runs
        if stage.check and (settings.force or states[stage.name] != "up to date"):
            stage.check(given(stage.name, settings))
    for line in model_lines(models_of(settings)):  # the first lines: what will judge, and whether it means anything
        log.info("%s", line)
    report: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        started = time.time()
        if not settings.force and _state(stage, settings)[0] == "up to date":
            log.info("%s: up to date, skipped", stage.name)
            report[stage.name] = {"seconds": 0.0, "skipped": True}
            record = require_stage(settings.output, stage.name)
        else:
            record = run_stage(stage, settings, options)
            report[stage.name] = {"seconds": round(time.time() - started, 2), "skipped": False}
            log.info("%s: done in %.2fs", stage.name, report[stage.name]["seconds"])
        if stage.gate:  # checked on a skipped stage too: a rerun must not go past what stopped the last one
            stage.gate(given(stage.name, settings), record)
    return report


def _state(stage: Stage, settings: Settings) -> tuple[str, str]:
    """(state, why) of one stage."""
    try:
        record = require_stage(settings.output, stage.name)
    except DamagedArtifact as e:
        return "damaged", e.detail
    except MissingArtifact:
        return "missing", ""
    try:
        current = record["fingerprint"] == fingerprint(stage, settings)
    except (FileNotFoundError, ValueError):  # an upstream stage or an input file gone: it cannot be checked
        return "stale", "an upstream stage or an input is missing or damaged"
    if not current:
        return "stale", "settings, models, inputs or an upstream stage changed"
    outdated = stage.outdated(given(stage.name, settings), record) if stage.outdated else ""
    return ("stale", outdated) if outdated else ("up to date", "")


def stage_status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per stage: "up to date", "stale" (complete, but for other settings, models or inputs, or downstream of a
    stage that is not up to date: `run` would redo it), "damaged" (committed, but a file it lists is gone or
    changed: `why` names it) or "missing" (never committed)."""
    out: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        state, why = _state(stage, settings)
        if state == "up to date" and any(out[u]["state"] != "up to date" for u in stage.upstream):
            state, why = "stale", "an upstream stage is not up to date"
        out[stage.name] = {"state": state, "why": why}
        if state not in ("missing", "damaged"):
            out[stage.name]["seconds"] = require_stage(settings.output, stage.name).get("seconds")
    return out
