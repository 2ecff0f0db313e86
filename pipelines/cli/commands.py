"""Every `judgemine` command, in one list: its name, help, flags and what it does. pipelines/cli/parser.py builds the
one parser (a subcommand each) from this list and maps errors to exit codes."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from judgemine.pipelines.cli.arguments import add_fields, add_settings, flag, load_settings, setting_flags
from judgemine.pipelines.cli.flags import beam_options
from judgemine.pipelines.outputs.derived import derived_status
from judgemine.pipelines.outputs.health import demo_models
from judgemine.pipelines.outputs.summary import summary
from judgemine.pipelines.run.artifacts import foreign_files
from judgemine.pipelines.run.commit import remove_leftovers
from judgemine.pipelines.run.errors import UserError
from judgemine.pipelines.run.lock import read_lock, run_lock
from judgemine.pipelines.run.runner import run_all, run_one, stage_status
from judgemine.pipelines.settings import Settings
from judgemine.pipelines.stages import BY_NAME, STAGES
from judgemine.schemas import storage
from judgemine.schemas.layout import RunLayout

EXIT_FAILED, EXIT_USER, EXIT_NOT_UP_TO_DATE, EXIT_LOCKED = 1, 2, 3, 4
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    """name and help as `judgemine --help` lists them; arguments: adds the command's flags to its subparser;
    run: (parsed flags, the arguments left for Beam, verbose) -> exit code."""
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, list[str], bool], int]


def _quiet_workers(rest: list[str], verbose: bool) -> list[str]:
    """Worker processes (multi-process and remote runners) log at ERROR except judgemine's own lines, unless
    --verbose or the user set Beam's log-level options."""
    if verbose or any(a.startswith(("--default_sdk_harness_log_level", "--sdk_harness_log_level_overrides"))
                      for a in rest):
        return rest
    return [*rest, "--default_sdk_harness_log_level=ERROR", '--sdk_harness_log_level_overrides={"judgemine": "INFO"}']


def settings_of(args: argparse.Namespace, rest: list[str], prog: str,
                verbose: bool = False) -> tuple[Settings, PipelineOptions]:
    """The run's settings (YAML config, then flags) and Beam's own options from what is left."""
    options = beam_options(_quiet_workers(rest, verbose), setting_flags(), prog)
    try:
        settings = load_settings(args)
    except (ValueError, OSError, yaml.YAMLError) as e:
        raise UserError(str(e).replace("\n", " ")) from None
    if not settings.output:
        raise UserError("--output DIR is required")
    if os.path.exists(settings.output) and not os.path.isdir(settings.output):
        raise UserError(f"--output {settings.output} is a file, not a directory")
    # resolved once: a link retargeted mid-run cannot send later stages into another folder
    settings = dataclasses.replace(settings, output=_resolved(settings.output))
    FileSystems.set_options(options)  # s3://, gs:// outputs: the driver's own reads and commits use the options
    return settings, options


def _settings_for(stage: str | None) -> Callable[[argparse.ArgumentParser], None]:
    """Every setting is accepted by every command (a stage's fingerprint chains its upstream stages'); a stage's
    --help shows the run's settings and its own."""
    def add(parser: argparse.ArgumentParser) -> None:
        shown = None if stage is None else (lambda group: group == "run" or group.split(":")[0] == stage)
        add_settings(parser, shown)
    return add


def _stage(name: str) -> Callable[[argparse.Namespace, list[str], bool], int]:
    def run(args: argparse.Namespace, rest: list[str], verbose: bool) -> int:
        settings, options = settings_of(args, rest, f"judgemine {name}", verbose)
        with run_lock(settings.output, name):
            _clean(settings.output)
            print(json.dumps(run_one(name, settings, options), indent=2, sort_keys=True))
        return 0
    return run


def _resolved(output: str) -> str:
    """A local output by its real path, resolved once when the command starts."""
    return output if storage.is_remote(output) else os.path.realpath(output)


def _clean(output: str) -> None:
    for path in remove_leftovers(output):
        log.info("removed what a killed run left: %s", path)


def _run(args: argparse.Namespace, rest: list[str], verbose: bool) -> int:
    settings, options = settings_of(args, rest, "judgemine run", verbose)
    with run_lock(settings.output, "run"):
        _clean(settings.output)
        ran = run_all(settings, options)
        manifest = json.loads(storage.read_text(RunLayout(settings.output).manifest))
        print(summary(manifest, ran))
        if settings.report:
            from judgemine.pipelines.outputs.report import write_report
            print(f"report:          {write_report(settings.output)}")
        if not manifest["accounting"]["balanced"]:
            print("judgemine: the accounting does not balance (see manifest.json `accounting`): rows were lost",
                  file=sys.stderr)
            return EXIT_FAILED
    return 0


def _status(args: argparse.Namespace, rest: list[str], verbose: bool) -> int:
    settings, _ = settings_of(args, rest, "judgemine status", verbose)
    if not settings.pairs:
        raise UserError("status compares what is committed under --output with the run's settings, and none were "
                        "given: pass the run's --config (or its --pairs and the flags it ran with)")
    with read_lock(settings.output):
        rows = stage_status(settings)
        for name, state in rows.items():
            why = f"  ({state['why']})" if state["why"] else ""
            print(f"{name:9s} {state['state']:11s} {state.get('seconds', '')}{why}".rstrip())
        for line in derived_status(settings.output):
            print(line)
        for rel in foreign_files(settings.output, BY_NAME):
            print(f"foreign   {rel} (not written by judgemine: readers ignore it)")
    return 0 if all(r["state"] == "up to date" for r in rows.values()) else EXIT_NOT_UP_TO_DATE


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the plan as JSON")
    add_settings(parser)


def _plan(args: argparse.Namespace, rest: list[str], verbose: bool) -> int:
    from judgemine.pipelines.cli.plan import make_plan, plan_table
    settings, _ = settings_of(args, rest, "judgemine plan", verbose)
    plan = make_plan(settings)
    print(json.dumps(plan, indent=2, sort_keys=True) if args.json else plan_table(plan))
    return 0


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    from judgemine.pipelines.outputs.exports import EXPORTS
    parser.add_argument("--output", required=True, help="the run directory")
    parser.add_argument("--format", choices=EXPORTS.names(), default="unime")
    parser.add_argument("--to", default=None, help="destination file (default: DIR/export/<format>.<suffix>)")
    parser.add_argument("--num-negatives", type=int, default=None,
                        help="the first k stored negatives of each row (default: all stored)")
    parser.add_argument("--skip-fallback", action=argparse.BooleanOptionalAction, default=None,
                        help="leave out fallback rows (random negatives scored 1.0, above their positive); default: "
                             "skipped, except by --format unime, which keeps the paper's data as it is")
    for name, member in EXPORTS.members().items():
        add_fields(parser, dataclasses.fields(member.Options), typing.get_type_hints(member.Options),
                   _titled(f"--format {name} options"))


def _titled(title: str) -> Callable[[dataclasses.Field[Any]], str]:
    return lambda f: title


def _export(args: argparse.Namespace, rest: list[str], verbose: bool) -> int:
    from judgemine.pipelines.outputs.exports import EXPORTS, ExportOptions, run_export
    beam_options(rest, [], "judgemine export")  # object-store options for an s3:// or gs:// run
    FileSystems.set_options(PipelineOptions(rest))
    chosen = EXPORTS.get(args.format)
    for name, member in EXPORTS.members().items():
        for f in dataclasses.fields(member.Options):
            if name != args.format and getattr(args, f.name) is not None:
                raise UserError(f"{flag(f.name)} is an option of --format {name}, not of --format {args.format}")
    own = chosen.Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(chosen.Options)
                            if getattr(args, f.name) is not None})
    exporter = chosen(ExportOptions(args.num_negatives, args.skip_fallback), own)
    output = _resolved(args.output)
    dest = args.to or RunLayout(output).export_file(args.format, exporter.suffix)
    with read_lock(output):
        result = run_export(exporter, output, dest)
    dropped = f", {result.dropped} rows {exporter.dropped_as}" if result.dropped else ""
    print(f"{result.records} records -> {dest} ({result.rows} shard rows, {result.fallback_skipped} fallback rows "
          f"skipped{dropped})")
    models = json.loads(storage.read_text(RunLayout(output).manifest)).get("run", {}).get("models", {})
    for finding in demo_models(models):  # a file that trains without complaint says it once more
        print(f"judgemine: {finding.line()}", file=sys.stderr)
    return 0


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", help="the run directory (or --output)")
    parser.add_argument("--output", default=None, help="the run directory")
    parser.add_argument("--to", default=None, help="the page's file (default: DIR/report/index.html; elsewhere for a "
                        "run that cannot be written)")


def _report(args: argparse.Namespace, rest: list[str], verbose: bool) -> int:
    from judgemine.pipelines.outputs.report import write_report
    beam_options(rest, [], "judgemine report")
    FileSystems.set_options(PipelineOptions(rest))
    output = args.output or args.run
    if not output:
        raise UserError("judgemine report OUTPUT: the run directory is required")
    from judgemine.pipelines.outputs.exports.base import check_destination
    output = _resolved(output)
    to = check_destination(output, args.to) if args.to else None
    with read_lock(output):
        print(write_report(output, to))
    return 0


def _tiny_arguments(parser: argparse.ArgumentParser) -> None:
    from judgemine.testing.tiny_models import add_arguments
    add_arguments(parser)


def _tiny(args: argparse.Namespace, rest: list[str], verbose: bool) -> int:
    from judgemine.testing.tiny_models import build
    if rest:
        raise UserError(f"judgemine build-tiny-judge: unexpected argument {rest[0]!r}")
    print(build(args))
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("run", "every stage in order, skipping those already up to date (--force reruns all)",
            _settings_for(None), _run),
    *(Command(s.name, f"the {s.name} stage alone, from the committed artifacts of the stages it reads",
              _settings_for(s.name), _stage(s.name)) for s in STAGES),
    Command("plan", "what a run will cost, before spending: queries, candidates, judge pairs (and those already "
            "cached), time per stage from a short calibration here, storage", _plan_arguments, _plan),
    Command("status", "which stages are complete under --output and up to date with the settings given (exit 0 "
            "only when every stage is, 3 when not, 4 while a run holds it): for schedulers' sensors",
            _settings_for(None), _status),
    Command("export", "the committed shards in another trainer's format, streamed to one file",
            _export_arguments, _export),
    Command("report", "OUTPUT/report/index.html: what the run mined, for a person to look at before training",
            _report_arguments, _report),
    Command("build-tiny-judge", "a tiny random-weight model folder for demos and tests", _tiny_arguments, _tiny),
)
