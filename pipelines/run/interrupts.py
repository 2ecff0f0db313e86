"""Ctrl-C and SIGTERM (a scheduler cancelling a task) end a command the same way: the signal becomes an
`Interrupted` raised in the main thread, so every temporary directory of the stage running is removed on the
way out (pipelines/run/commit.py), and the command prints one line and exits 128 + the signal's number (130, 143).
Committed stages are untouched: a rerun resumes from them. Beam re-raises an error from inside a DoFn as its
own (and logs its traceback), and one raised inside a finaliser is only reported and the run goes on: the
signal is remembered, so the command still ends as interrupted, and library log lines and finaliser reports
after it are held back (shown with --verbose)."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)
running: tuple[str, str] = ("", "")  # (stage, output) of the stage running now (pipelines/run/runner.py sets it)
received: list[Interrupted] = []  # the signal that arrived, if any


class Interrupted(BaseException):
    """A signal asked the command to stop (a BaseException, like KeyboardInterrupt: no `except Exception` of a
    library swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    for handled in HANDLED:  # a second signal while the first unwinds ends the process at once, as usual
        signal.signal(handled, signal.SIG_DFL)
    received.append(Interrupted(signum))
    raise received[-1]


class _QuietAfterSignal(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not received or record.name.startswith("judgemine")


@contextmanager
def interruptible(verbose: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted inside the block (the main thread only, as Python delivers them)."""
    received.clear()
    main_thread = threading.current_thread() is threading.main_thread()  # Python takes handlers there only
    before = {s: signal.signal(s, _raise) for s in HANDLED} if main_thread else {}
    quiet = _QuietAfterSignal()
    handlers = [] if verbose else logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(quiet)
    hook = sys.unraisablehook
    if not verbose:
        sys.unraisablehook = lambda raised: None if isinstance(raised.exc_value, Interrupted) else hook(raised)
    try:
        yield
    finally:
        for s, previous in before.items():
            signal.signal(s, previous)
        for handler in handlers:
            handler.removeFilter(quiet)
        sys.unraisablehook = hook
    if received:  # raised where it could not propagate (a finaliser): the command ends as interrupted all the same
        raise received[0]


def interruption(error: BaseException) -> Interrupted | None:
    """The signal behind an error: the error itself, or one Beam re-raised as its own after the signal."""
    return error if isinstance(error, Interrupted) else received[0] if received else None


def interrupted_lines(error: Interrupted) -> list[str]:
    """The line every interrupt prints, and one more when a temporary directory outlived the way out (a worker
    thread still writing into it): the next run under the lock removes it."""
    from judgemine.pipelines.run.commit import leftovers
    stage, output = running
    lines = [f"judgemine: interrupted ({error}){f' in {stage}' if stage else ''}; committed stages are kept: "
             "rerun the same command to resume"]
    left = leftovers(output) if output else []
    if left:
        lines.append(f"judgemine: the next run removes what this one left: {', '.join(left)}")
    return lines
