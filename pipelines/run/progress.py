"""A stage's progress, watched from the driver whatever the runner: part files written into the stage's
temporary folders (one per unit of work) against the number it will write, the first line `first` seconds in,
then every `every` seconds; on a terminal a tqdm bar instead of lines. The time left counts down while a unit
runs: the units left at the mean time of those done, less the time since the last one finished (a rate over
the whole elapsed time would grow while a long unit runs)."""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator

from judgemine.schemas import storage
from judgemine.transforms.common.progress import human_seconds

log = logging.getLogger(__name__)


def _written(folders: list[str]) -> int:
    return sum(1 for f in folders for path in storage.files(f)
               if path.rsplit("/", 1)[-1].startswith("part-") and path.endswith(".parquet"))


class StageProgress:
    """Context manager: a daemon thread reporting `name: done of total <unit>` while the block runs (a stage that
    cannot count its units ahead, `total` 0, reports how long it has run and the part files written so far)."""

    def __init__(self, name: str, folders: list[str], total: int, every: float = 30.0, first: float = 5.0) -> None:
        self.name, self.folders, self.total, self.every, self.first = name, folders, total, every, first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> StageProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _ticks(self) -> Iterator[int]:
        wait = 1.0 if sys.stderr.isatty() else min(self.first, self.every)
        while not self._stop.wait(wait):
            yield _written(self.folders)
            wait = 1.0 if sys.stderr.isatty() else self.every

    def _watch(self) -> None:
        if sys.stderr.isatty():
            from tqdm import tqdm
            with tqdm(total=self.total or None, desc=self.name, unit="part", leave=False) as bar:
                for done in self._ticks():
                    bar.update(done - bar.n)
            return
        started = time.monotonic()
        seen, finished = 0, started  # units done at the last tick, and when the last of them was first seen
        for done in self._ticks():
            now = time.monotonic()
            if not self.total:
                log.info("%s: running for %s, %d part files written", self.name, human_seconds(now - started), done)
                continue
            if done > seen:
                seen, finished = done, now
            if done >= self.total:
                continue
            left = time_left(self.total - done, (finished - started) / done if done else 0.0, now - finished)
            log.info("%s: %d of %d chunks done, %s", self.name, done, self.total, left)


def time_left(units: int, per_unit: float, since_last: float) -> str:
    """`units` more at `per_unit` seconds each, the one running already `since_last` in (0 per unit: unknown)."""
    if not per_unit:
        return "time left known once the first chunk is done"
    return f"about {human_seconds(max(units * per_unit - since_last, 0.0))} left"
