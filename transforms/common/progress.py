"""Progress lines for long units of work: items done of a total, the rate and the time left, at most one line
every `every` seconds (a judge chunk can take minutes; silence would look like a hang)."""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Ticker:
    """`advance(n)` after each piece of work; logs "<what>: done of total, rate/s, ETA" now and then."""

    def __init__(self, what: str, total: int, unit: str = "pairs", every: float = 30.0) -> None:
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.done = 0
        self._started = self._last = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last < self.every or self.done >= self.total:
            return
        self._last = now
        rate = self.done / max(now - self._started, 1e-9)
        log.info("%s: %d of %d %s, %.1f/s, about %.0f s left", self.what, self.done, self.total, self.unit, rate,
                 (self.total - self.done) / max(rate, 1e-9))
