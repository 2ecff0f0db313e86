"""`judgemine <command> [flags] [beam pipeline options]`: one argparse parser, a subcommand per entry of
pipelines/cli/commands.py's list; what a subcommand's flags leave is Beam's to parse (pipelines/cli/flags.py).
Errors are one line each, mapped to exit codes: 0 done, 1 failed, 2 a user error, 3 status: not up to date,
4 --output held by a live run."""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import NoReturn

from apache_beam.options.pipeline_options import PipelineOptions

from judgemine import __version__
from judgemine.pipelines.cli.commands import COMMANDS, EXIT_FAILED, EXIT_LOCKED, EXIT_USER, Command, settings_of
from judgemine.pipelines.outputs.manifest import code_version
from judgemine.pipelines.run.artifacts import MissingArtifact
from judgemine.pipelines.run.errors import UserError
from judgemine.pipelines.run.interrupts import interrupted_lines, interruptible, interruption
from judgemine.pipelines.run.lock import OutputLocked
from judgemine.pipelines.settings import Settings

EPILOG = ("Beam pipeline options (--runner, --direct_num_workers, ...) pass through to Beam; --verbose shows "
          "library logs and tracebacks. The settings' reference: docs/reference/settings.md.")


class Parser(argparse.ArgumentParser):
    """A usage error is one line naming the command and what to do, not the whole usage listing."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER, f"{self.prog}: {message} (`{self.prog} --help` lists the flags)\n")


def parsers() -> tuple[Parser, dict[str, argparse.ArgumentParser]]:
    """The command line's parser and each command's own (for its reference page)."""
    top = Parser(prog="judgemine", allow_abbrev=False, epilog=EPILOG,
                 description="Hard negatives for embedding training, judged by an MLLM (UniME-V2), as a staged "
                             "Apache Beam pipeline.")
    top.add_argument("--version", action="store_true", help="the version and the git commit of the checkout")
    top.add_argument("--verbose", action="store_true", help="library logs, and tracebacks of errors")
    commands = top.add_subparsers(dest="command", metavar="<command>", parser_class=Parser)
    subs: dict[str, argparse.ArgumentParser] = {}
    for command in COMMANDS:
        sub = subs[command.name] = commands.add_parser(command.name, help=command.help, description=command.help,
                                                       epilog=EPILOG, allow_abbrev=False)
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,  # given here or before
                         help="library logs, and tracebacks of errors")
        command.arguments(sub)
    return top, subs


def parser() -> Parser:
    return parsers()[0]


def settings_from(argv: list[str], command: str = "run") -> tuple[Settings, PipelineOptions]:
    """The settings and Beam options `judgemine <command> ARGV` would run with (for programs and tests)."""
    args, rest = parser().parse_known_args([command, *argv])
    return settings_of(args, rest, f"judgemine {command}")


def _log_progress() -> None:
    """judgemine's progress lines at INFO on stderr, whatever Beam did to the root logger (its import leaves a
    WARNING-level handler there, which would hide them); every module logs under `judgemine.`."""
    log = logging.getLogger("judgemine")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s judgemine %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _one_line(error: BaseException) -> str:
    """The last line of an error's message that is not a traceback frame (Beam wraps a worker's traceback)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip() and not line.startswith(" ")]
    return lines[-1] if lines else type(error).__name__


def main(argv: list[str] | None = None, verbose: bool = False) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = parser()
    if not argv:
        top.print_help()
        return EXIT_USER
    try:
        args, rest = top.parse_known_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    if args.version:
        print(f"judgemine {__version__} ({code_version() or 'not a git checkout'})")
        return 0
    if args.command is None:
        print(f"judgemine: unexpected argument {rest[0]!r}: a command comes first (`judgemine --help` lists them)"
              if rest else "judgemine: a command is required (`judgemine --help` lists them)", file=sys.stderr)
        return EXIT_USER
    command: Command = next(c for c in COMMANDS if c.name == args.command)
    verbose = verbose or args.verbose
    _log_progress()
    try:
        with interruptible(verbose):
            return command.run(args, rest, verbose)
    except BaseException as e:  # noqa: BLE001 - each ending gets its one line and exit code
        return _ended(e, command, verbose)


def _ended(e: BaseException, command: Command, verbose: bool) -> int:
    """The exit code of a command that raised, after its one line (the traceback with --verbose, for a failure
    or an interrupt)."""
    signal = interruption(e)
    if signal:
        if verbose:
            traceback.print_exception(e)
        for line in interrupted_lines(signal):
            print(line, file=sys.stderr)
        return signal.exit_code
    if isinstance(e, (UserError, MissingArtifact)):
        print(f"judgemine: {e}", file=sys.stderr)
        return EXIT_USER
    if isinstance(e, OutputLocked):
        if command.name == "status":  # a sensor's answer, not an error
            print(f"running   ({e.holder})")
            return EXIT_LOCKED
        print(f"judgemine: {e}", file=sys.stderr)
        return EXIT_LOCKED
    if not isinstance(e, Exception):  # SystemExit and the like end the process as they would have
        raise e
    if verbose:
        traceback.print_exception(e)
    print(f"judgemine: {command.name} failed: {_one_line(e)}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
