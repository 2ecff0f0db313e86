"""`judgemine <command> [settings] [beam pipeline options]`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from typing import Any

import yaml
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from judgemine import __version__
from judgemine.pipelines.artifacts import MissingArtifact, foreign_files
from judgemine.pipelines.commit import remove_leftovers
from judgemine.pipelines.derived import derived_status
from judgemine.pipelines.errors import UserError
from judgemine.pipelines.flags import check_flags, storage_options
from judgemine.pipelines.lock import OutputLocked, read_lock, run_lock
from judgemine.pipelines.manifest import code_version
from judgemine.pipelines.runner import run_all, run_one, stage_status
from judgemine.pipelines.options import add_settings, load_settings
from judgemine.pipelines.settings import Settings
from judgemine.pipelines.stages import BY_NAME
from judgemine.schemas import storage

EXIT_FAILED, EXIT_USER, EXIT_NOT_UP_TO_DATE, EXIT_LOCKED = 1, 2, 3, 4
COMMANDS = ("run", *BY_NAME, "status", "plan", "export", "report", "build-tiny-judge")
OWN_PARSER = ("export", "report", "build-tiny-judge")  # commands with their own flags, not the run settings
USAGE = f"""judgemine <command> [--config FILE] [--output DIR] [settings...] [beam pipeline options...]

commands:
  run                 every stage in order, skipping those already up to date (--force reruns all)
  {'|'.join(BY_NAME)}
                      one stage, from the artifacts of the stages it reads under --output
  plan                what a run will cost, before spending: queries, candidates, judge pairs (and those
                      already cached), time per stage from a short calibration here, storage (--json: as JSON)
  status              which stages are complete under --output, and whether they are up to date with the
                      settings given (exit 0 only when every stage is): for schedulers' sensors
  export              --format unime|sentence-transformers|flagembedding|reranker-pairwise|reranker-listwise
                      [--to FILE] [--num-negatives K] [--skip-fallback]: the shards for another trainer
  report              OUTPUT/report/index.html: what the run mined, for a person to look at before training
  build-tiny-judge    --output DIR [--texts JSONL]: a tiny random-weight judge for demos and tests

settings: judgemine <command> --help lists every one; a YAML --config sets them too, flags override it."""


def summary(manifest: dict[str, Any], report: dict[str, dict[str, Any]] | None) -> str:
    acc, scores = manifest["accounting"], manifest["scores"]
    lines = [f"queries in:      {acc['pairs_in']}",
             f"shards written:  {len(manifest['shards'])} ({acc['rows_out']} rows) under "
             f"{manifest['settings']['output']}/shards",
             f"rejected:        {sum(acc['rejected'].values())} "
             + json.dumps(manifest["rejects_by_reason"], sort_keys=True),
             f"corpus rows:     {acc['corpus']['rows_in']} in, {acc['corpus']['kept']} kept, "
             f"{acc['corpus']['rejected']} rejected",
             f"accounted for:   {'yes' if acc['balanced'] else 'NO'}",
             f"judge score:     positive mean {scores['positive'].get('mean', float('nan')):.3f}, "
             f"negative mean {scores['negative'].get('mean', float('nan')):.3f} "
             f"({scores['negative_in_shards'].get('mean', float('nan')):.3f} with the fallback rows' 1.0s), "
             f"{scores['false_negatives_filtered']} false negatives filtered, "
             f"{scores['fallback_rows']} fallback rows",
             "time per stage:  " + ", ".join(
                 f"{s} {r['seconds']:.2f}s" + (" (up to date)" if report and report[s]["skipped"] else "")
                 for s, r in (report or manifest["stages"]).items())]
    return "\n".join(lines)


def _log_progress() -> None:
    """judgemine's progress lines at INFO on stderr, whatever Beam did to the root logger (its import leaves a
    WARNING-level handler there, which would hide them)."""
    log = logging.getLogger("judgemine")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s judgemine %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _help(command: str) -> None:
    """A stage's command shows the settings it uses (its groups and the run's); run and status show all."""
    parser = argparse.ArgumentParser(prog=f"judgemine {command}", description=USAGE.split("\n\n")[0],
                                     epilog="Beam pipeline options (--runner, --direct_num_workers, ...) pass "
                                            "through; --verbose shows library logs and tracebacks.")
    if command in BY_NAME:
        add_settings(parser, lambda g: g == "run" or g.split(":")[0] == command, with_defaults=True)
    else:
        add_settings(parser, with_defaults=True)
    parser.print_help()


def _export(rest: list[str]) -> int:
    from judgemine.pipelines.exports import EXPORTS, ExportOptions, run_export
    parser = argparse.ArgumentParser(prog="judgemine export", allow_abbrev=False,
                                     description="The committed shards in another trainer's format, streamed to "
                                                 "one file.")
    parser.add_argument("--output", required=True, help="the run directory")
    parser.add_argument("--format", choices=list(EXPORTS), default="unime")
    parser.add_argument("--to", default=None, help="destination file (default: DIR/export/<format>.<suffix>)")
    parser.add_argument("--num-negatives", type=int, default=None,
                        help="the first k stored negatives of each row (default: all stored)")
    parser.add_argument("--skip-fallback", action=argparse.BooleanOptionalAction, default=None,
                        help="leave out fallback rows (random negatives scored 1.0, above their positive); default: "
                             "skipped, except by --format unime, which keeps the paper's data as it is")
    parser.add_argument("--layout", choices=["triplet", "n-tuple", "n-tuple-scores"], default="n-tuple",
                        help="sentence-transformers: mine_hard_negatives' output_format (n-tuple-scores adds "
                             "`scores`, positive first)")
    parser.add_argument("--prompt", default="", help="flagembedding: the `prompt` field (query instruction)")
    parser.add_argument("--task-type", default="normal", help="flagembedding: the `type` field")
    parser.add_argument("--seed", type=int, default=0, help="reranker-listwise: seed of the positive's position")
    args, beam_args = parser.parse_known_args(rest)
    storage_options(beam_args, "judgemine export")
    exporter = EXPORTS[args.format](ExportOptions(args.num_negatives, args.skip_fallback, args.seed, args.layout,
                                                  args.prompt, args.task_type))
    dest = args.to or os.path.join(args.output, "export", f"{args.format}.{exporter.suffix}")
    with read_lock(args.output):
        result = run_export(exporter, args.output, dest)
    print(f"{result.records} records -> {dest} ({result.rows} shard rows, {result.fallback_skipped} fallback rows "
          f"skipped)")
    return 0


def _quiet_workers(rest: list[str], verbose: bool) -> list[str]:
    """Worker processes (multi-process and remote runners) log at ERROR except judgemine's own lines, unless
    --verbose or the user set Beam's log-level options."""
    if verbose or any(a.startswith(("--default_sdk_harness_log_level", "--sdk_harness_log_level_overrides"))
                      for a in rest):
        return rest
    return [*rest, "--default_sdk_harness_log_level=ERROR", '--sdk_harness_log_level_overrides={"judgemine": "INFO"}']


def _settings(rest: list[str], verbose: bool = False) -> tuple[Settings, PipelineOptions]:
    check_flags(rest)
    options = PipelineOptions(_quiet_workers(rest, verbose))
    try:
        settings = load_settings(options)
    except (ValueError, OSError, yaml.YAMLError) as e:
        raise UserError(str(e).replace("\n", " ")) from None
    if not settings.output:
        raise UserError("--output DIR is required")
    if os.path.exists(settings.output) and not os.path.isdir(settings.output):
        raise UserError(f"--output {settings.output} is a file, not a directory")
    FileSystems.set_options(options)  # s3://, gs:// outputs: the driver's own reads and commits use the options
    return settings, options


def _command(command: str, rest: list[str], verbose: bool) -> int:
    as_json = command == "plan" and "--json" in rest
    settings, options = _settings([a for a in rest if not (as_json and a == "--json")], verbose)
    if command == "plan":
        from judgemine.pipelines.plan import make_plan, plan_table
        plan = make_plan(settings)
        print(json.dumps(plan, indent=2, sort_keys=True) if as_json else plan_table(plan))
        return 0
    if command == "status":
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
    with run_lock(settings.output, command):
        for path in remove_leftovers(settings.output):
            logging.getLogger("judgemine").info("removed what a killed run left: %s", path)
        if command != "run":
            print(json.dumps(run_one(command, settings, options), indent=2, sort_keys=True))
            return 0
        ran = run_all(settings, options)
        manifest = json.loads(storage.read_text(os.path.join(settings.output, "manifest.json")))
        print(summary(manifest, ran))
        if settings.report:
            from judgemine.pipelines.report import write_report
            print(f"report:          {write_report(settings.output)}")
        if not manifest["accounting"]["balanced"]:
            print("judgemine: the accounting does not balance (see manifest.json `accounting`): rows were lost",
                  file=sys.stderr)
            return EXIT_FAILED
    return 0


def _one_line(error: BaseException) -> str:
    """The last line of an error's message that is not a traceback frame (Beam wraps a worker's traceback)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip() and not line.startswith(" ")]
    return lines[-1] if lines else type(error).__name__


def main(argv: list[str] | None = None, verbose: bool = False) -> int:
    """The exit code: 0 done, 1 failed, 2 a user error, 3 status: not up to date, 4 --output held by a live run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else EXIT_USER
    if argv[0] == "--version":
        print(f"judgemine {__version__} ({code_version() or 'not a git checkout'})")
        return 0
    if argv[0] not in COMMANDS:
        print(f"judgemine: unknown command {argv[0]!r} (one of {', '.join(COMMANDS)})", file=sys.stderr)
        return EXIT_USER
    command, rest = argv[0], argv[1:]
    _log_progress()
    if "-h" in rest or "--help" in rest:
        if command in OWN_PARSER:
            return _subcommand(command, ["--help"])
        _help(command)
        return 0
    try:
        if command in OWN_PARSER:
            return _subcommand(command, rest)
        return _command(command, rest, verbose)
    except (UserError, MissingArtifact) as e:
        print(f"judgemine: {e}", file=sys.stderr)
        return EXIT_USER
    except OutputLocked as e:
        if command == "status":  # a sensor's answer, not an error
            print(f"running   ({e.holder})")
            return EXIT_LOCKED
        print(f"judgemine: {e}", file=sys.stderr)
        return EXIT_LOCKED
    except Exception as e:  # noqa: BLE001 - the run failed: one line, the traceback with --verbose
        if verbose:
            traceback.print_exc()
        print(f"judgemine: {command} failed: {_one_line(e)}", file=sys.stderr)
        return EXIT_FAILED


def _report(rest: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="judgemine report", allow_abbrev=False,
                                     description="OUTPUT/report/index.html: score histograms, false-negative and "
                                                 "fallback rates per subset, the rows to look at first, the run's "
                                                 "settings and timings; one self-contained file.")
    parser.add_argument("run", nargs="?", help="the run directory (or --output)")
    parser.add_argument("--output", default=None, help="the run directory")
    args, beam_args = parser.parse_known_args(rest)
    storage_options(beam_args, "judgemine report")
    output = args.output or args.run
    if not output:
        raise UserError("judgemine report OUTPUT: the run directory is required")
    from judgemine.pipelines.report import write_report
    with read_lock(output):
        print(write_report(output))
    return 0


def _subcommand(command: str, rest: list[str]) -> int:
    if command == "export":
        return _export(rest)
    if command == "report":
        return _report(rest)
    from judgemine.testing.tiny_models import main as build
    build(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
