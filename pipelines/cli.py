"""`judgemine <command> [settings] [beam pipeline options]`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from judgemine.pipelines.commit import remove_leftovers
from judgemine.pipelines.lock import OutputLocked, run_lock
from judgemine.pipelines.manifest import build_manifest
from judgemine.pipelines.runner import run_all, run_one, stage_status
from judgemine.pipelines.settings import JudgemineOptions, load_settings
from judgemine.pipelines.stages import BY_NAME

EXIT_LOCKED = 4  # another live run holds --output
COMMANDS = ("run", *BY_NAME, "status", "export", "build-tiny-judge")
USAGE = f"""judgemine <command> [--config FILE] [--output DIR] [settings...] [beam pipeline options...]

commands:
  run                 every stage in order, skipping those already up to date (--force reruns all)
  {'|'.join(BY_NAME)}
                      one stage, from the artifacts of the stages it reads under --output
  status              which stages are complete under --output, and whether they are up to date with the
                      settings given (exit 0 only when every stage is): for schedulers' sensors
  export              --format unime|reranker-pairwise|reranker-listwise [--to FILE]: the shards as the
                      official UniME-V2 JSON array, or reranker training data (JSON Lines)
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
             f"negative mean {scores['negative'].get('mean', float('nan')):.3f}, "
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    _log_progress()
    if command == "build-tiny-judge":
        from judgemine.testing.tiny_models import main as build
        build(rest)
        return 0
    if command == "export":
        parser = argparse.ArgumentParser(prog="judgemine export")
        parser.add_argument("--output", required=True, help="the run directory")
        parser.add_argument("--format", choices=["unime", "reranker-pairwise", "reranker-listwise"],
                            default="unime")
        parser.add_argument("--to", default=None, help="destination file (default: DIR/export/<format>.json[l])")
        parser.add_argument("--seed", type=int, default=0, help="seed of the listwise positive's position")
        args = parser.parse_args(rest)
        from judgemine.pipelines.export import export_reranker, export_unime
        suffix = "json" if args.format == "unime" else "jsonl"
        dest = args.to or os.path.join(args.output, "export", f"{args.format}.{suffix}")
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        try:
            if args.format == "unime":
                print(f"{export_unime(args.output, dest)} records -> {dest}")
            else:
                written, skipped = export_reranker(args.output, dest, args.format.split("-")[1], args.seed)
                print(f"{written} records -> {dest} ({skipped} fallback rows skipped)")
        except FileNotFoundError as e:
            print(f"judgemine: {e}", file=sys.stderr)
            return 1
        return 0
    if "-h" in rest or "--help" in rest:
        parser = argparse.ArgumentParser(prog=f"judgemine {command}")
        JudgemineOptions._add_argparse_args(parser)
        parser.print_help()
        return 0
    options = PipelineOptions(rest)
    try:
        settings = load_settings(options)
    except (ValueError, OSError) as e:
        print(f"judgemine: {e}", file=sys.stderr)
        return 2
    if not settings.output:
        print("judgemine: --output DIR is required", file=sys.stderr)
        return 2
    if command == "status":
        rows = stage_status(settings)
        for name, state in rows.items():
            print(f"{name:9s} {state['state']:11s} {state.get('seconds', '')}")
        return 0 if all(r["state"] == "up to date" for r in rows.values()) else 3
    if os.path.exists(settings.output) and not os.path.isdir(settings.output):
        print(f"judgemine: --output {settings.output} is a file, not a directory", file=sys.stderr)
        return 2
    try:
        with run_lock(settings.output, command):
            for path in remove_leftovers(settings.output):
                logging.getLogger("judgemine").info("removed what a killed run left: %s", path)
            if command == "run":
                report = run_all(settings, options)
                print(summary(build_manifest(settings), report))
            else:
                record = run_one(command, settings, options)
                print(json.dumps(record, indent=2, sort_keys=True))
    except OutputLocked as e:
        print(f"judgemine: {e}", file=sys.stderr)
        return EXIT_LOCKED
    except (FileNotFoundError, ValueError) as e:
        print(f"judgemine: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
