"""A stage's progress, watched from the driver whatever the runner: part files written into the stage's
temporary folders (one per unit of work) against the number it will write, with rate and time left, every
`every` seconds; on a terminal a tqdm bar instead of lines."""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator

from judgemine.schemas import storage

log = logging.getLogger(__name__)


def _written(folders: list[str]) -> int:
    return sum(1 for f in folders for path in storage.files(f)
               if path.rsplit("/", 1)[-1].startswith("part-") and path.endswith(".parquet"))


class StageProgress:
    """Context manager: a daemon thread reporting `name: done of total <unit>` while the block runs."""

    def __init__(self, name: str, folders: list[str], total: int, every: float = 30.0) -> None:
        self.name, self.folders, self.total, self.every = name, folders, total, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> StageProgress:
        if self.total > 1:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _ticks(self) -> Iterator[int]:
        while not self._stop.wait(1.0 if sys.stderr.isatty() else self.every):
            yield _written(self.folders)

    def _watch(self) -> None:
        if sys.stderr.isatty():
            from tqdm import tqdm
            with tqdm(total=self.total, desc=self.name, unit="chunk", leave=False) as bar:
                for done in self._ticks():
                    bar.update(done - bar.n)
            return
        started = time.monotonic()
        for done in self._ticks():
            rate = done / max(time.monotonic() - started, 1e-9)
            left = f", about {(self.total - done) / rate:.0f} s left" if rate else ""
            log.info("%s: %d of %d chunks done%s", self.name, done, self.total, left)
