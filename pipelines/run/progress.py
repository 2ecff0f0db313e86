"""A stage's progress and its workers' health, watched from the driver whatever the runner: the units the workers
report into the stage's work folder (transforms/common/progress.py) against the stage's total, one line the first
`first` seconds in, then every `every` seconds (on a terminal a tqdm bar instead). The rate is measured from the
first units seen (a model's loading is not work), and the time left only counts down.

The same files tell the driver when a runner cannot finish: no worker reported within `timeout` seconds of the
start (the workers could not start, or could not import Beam or judgemine), or a worker process that had been
reporting went silent that long (killed, or out of memory). A runner would wait for its own deadline (Beam's
portable runner: five minutes, then a gRPC traceback); the stage fails instead with one line naming the cause.
The driver's own process (the in-process runner) is not watched: it is the one waiting."""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

from judgemine.schemas import storage
from judgemine.transforms.common.progress import MARKER, beat_seconds, human_seconds, read_work, worker_name

log = logging.getLogger(__name__)


class WorkersFailed(RuntimeError):
    """The stage's workers cannot finish it (none started, or one went silent): the message is the one line."""


class StageProgress:
    """Context manager: a daemon thread reporting `name: done of total noun, rate, time left` while the block runs
    (a stage that cannot count its total ahead, `total` 0, reports its units and rate), and raising WorkersFailed
    in the main thread when its workers fail as above (`timeout` 0: not watched)."""

    def __init__(self, name: str, folder: str, total: int, noun: str, timeout: float = 0.0, *,
                 every: float = 30.0, first: float = 5.0, poll: float = 0.0) -> None:
        self.name, self.folder, self.total, self.noun, self.timeout = name, folder, total, noun, timeout
        self.every, self.first = every, first
        self.poll = poll or beat_seconds(folder) / 2  # a listing per poll: on an object store, every 5 s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="judgemine-stage-progress")
        self._failure: WorkersFailed | None = None
        self._handler: object = None

    def __enter__(self) -> StageProgress:
        # not empty: an empty object is a multipart upload of no parts, which S3 refuses (MalformedXML)
        storage.write_text(f"{self.folder.rstrip('/')}/{MARKER}", "watching\n")
        if self.timeout and threading.current_thread() is threading.main_thread():
            self._handler = signal.signal(signal.SIGUSR1, self._raise)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._handler is not None:
            signal.signal(signal.SIGUSR1, self._handler)  # type: ignore[arg-type]

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        if self._failure is not None:
            raise self._failure

    def _fail(self, message: str) -> None:
        self._failure = WorkersFailed(message)
        if self._handler is not None:
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def _looks(self) -> Iterator[tuple[float, int]]:
        """(now, units reported) every `poll` seconds, after checking the workers' health."""
        started = time.monotonic()
        changed: dict[str, tuple[int, float]] = {}  # worker file: (its last sequence number, when it changed)
        own = worker_name() + "-"
        while not self._stop.wait(self.poll):
            now, work = time.monotonic(), read_work(self.folder)
            for name, (_, seq) in work.items():
                if changed.get(name, (-1, 0.0))[0] != seq:
                    changed[name] = (seq, now)
            if self.timeout and self._failure is None:
                silent = [(now - at, name) for name, (_, at) in changed.items()
                          if not name.startswith(own) and now - at > self.timeout]
                if not work and now - started > self.timeout:
                    self._fail(f"no worker started within {self.timeout:.0f} s (--worker-timeout): the runner "
                               "could not start one (or it died while starting), or it could not import apache_beam "
                               "or judgemine (install both where the workers run: an EXTERNAL worker pool starts the "
                               "`python` on its own PATH)")
                elif silent:
                    quiet, name = max(silent)
                    self._fail(f"worker {name.rsplit('-', 1)[0]} stopped reporting {quiet:.0f} s ago (killed, out "
                               "of memory, or its machine gone; --worker-timeout): the runner cannot finish the "
                               "stage; rerun the command to resume from what is committed")
            yield now, sum(units for units, _ in work.values())

    def _watch(self) -> None:
        if sys.stderr.isatty():
            from tqdm import tqdm
            with tqdm(total=self.total or None, desc=self.name, unit=f" {self.noun}", leave=False) as bar:
                for _, done in self._looks():
                    bar.update(min(done, self.total or done) - bar.n)
            return
        lines = Lines(self.name, self.total, self.noun)
        started = time.monotonic()
        due = started + min(self.first, self.every)
        for now, done in self._looks():
            lines.see(now, done)
            if now >= due:
                log.info("%s", lines.line(now))
                due = now + self.every


class Lines:
    """The progress line's arithmetic: the rate since the first units were seen, and a time left that never
    grows (a slower stretch holds it back until the estimate catches up)."""

    def __init__(self, name: str, total: int, noun: str) -> None:
        self.name, self.total, self.noun = name, total, noun
        self.done, self.first, self.now = 0, (0.0, 0), 0.0
        self._left: tuple[float, float] | None = None  # (time left shown, when)

    def see(self, now: float, done: int) -> None:
        if done and not self.first[1]:
            self.first = (now, done)
        self.done, self.now = (min(done, self.total) if self.total else done), now

    def rate(self) -> float:
        at, units = self.first
        return (self.done - units) / (self.now - at) if units and self.now > at and self.done > units else 0.0

    def line(self, now: float) -> str:
        rate = self.rate()
        head = f"{self.name}: {self.done:,} of {self.total:,} {self.noun}" if self.total else \
            f"{self.name}: {self.done:,} {self.noun}"
        if not rate:
            return f"{head}, rate known once work is seen twice" if self.total or not self.done else head
        head += f", {rate:,.1f}/s"
        if not self.total or self.done >= self.total:
            return head
        left = (self.total - self.done) / rate
        if self._left is not None:
            left = min(left, max(self._left[0] - (now - self._left[1]), 0.0))
        self._left = (left, now)
        return f"{head}, about {human_seconds(left)} left" if left >= 1 else f"{head}, past the estimate"
