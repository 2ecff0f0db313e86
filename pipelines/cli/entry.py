"""The `judgemine` console command. Logging is set up before Beam is imported: library warnings (Beam's
"apitools not found", its INFO lines, the workers' log lines, model-loading bars) are shown only with
--verbose (a worker process of the multi-process runner still prints Beam's one import-time warning).

The process ends through os._exit once its outputs are committed and its streams flushed: the exit 134 seen
after a successful summary (`terminate called without an active exception`) is C++'s std::terminate for a
native thread still joinable when the interpreter's teardown destroys it; nothing of judgemine's is left to
do at that point, so the teardown is skipped."""
from __future__ import annotations

import logging
import os
import sys
import threading


def quiet_libraries(verbose: bool) -> None:
    """The root logger shows warnings of libraries only with --verbose (errors always)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.ERROR)
    # Beam logs a failed DoFn's traceback at ERROR before re-raising it; the command prints the error's one line
    # (pipelines/cli/parser.py), so without --verbose the traceback is noise.
    logging.getLogger("apache_beam").setLevel(logging.INFO if verbose else logging.CRITICAL)
    if not verbose:  # model-loading progress bars, here and in worker processes (they inherit the variable)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        threading.excepthook = _own_threads_only
        # Beam's portable runner logs a failed job's remote traceback through the root logger itself
        root.addFilter(lambda record: "apache_beam" not in record.pathname)


def _own_threads_only(args: threading.ExceptHookArgs) -> None:
    """A library thread's traceback (Beam's job-message reader when a job service goes away) is not printed: the
    command's one line says what happened (--verbose prints it); judgemine's own threads print theirs."""
    if args.thread is not None and args.thread.name.startswith("judgemine"):
        threading.__excepthook__(args)


def main() -> None:
    argv = sys.argv[1:]
    # The parser (pipelines/cli/parser.py) reads --verbose; logging is set before it is built, since building it imports
    # Beam, whose import already logs.
    quiet_libraries("--verbose" in argv)
    from judgemine.pipelines.cli.parser import main as run
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
