"""Progress lines for long units of work: items done of a total, the rate and the time left from the items done,
the first line `first` seconds in, then at most one every `every` seconds (a judge chunk can take minutes;
silence would look like a hang)."""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Ticker:
    """`advance(n)` after each piece of work; logs "<what>: done of total, rate/s, ETA" now and then."""

    def __init__(self, what: str, total: int, unit: str = "pairs", every: float = 30.0, first: float = 5.0) -> None:
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.done = 0
        self._started = time.monotonic()
        self._last = self._started - every + min(first, every)

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last < self.every or self.done >= self.total:
            return
        self._last = now
        rate = self.done / max(now - self._started, 1e-9)
        log.info("%s: %d of %d %s, %.1f/s, about %s left", self.what, self.done, self.total, self.unit, rate,
                 human_seconds((self.total - self.done) / max(rate, 1e-9)))


def human_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
