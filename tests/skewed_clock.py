"""A clock for the multi-process tests: ranks whose clocks disagree, so that a rank deciding on
its own clock when a time limit is up would stop at another step than the others."""

from __future__ import annotations

import time


class SkewedClock:
    """The ``time`` module with ``time()`` running ``rate`` times as fast (from when it was made)."""

    def __init__(self, rate: float):
        self.rate, self.start = rate, time.time()

    def time(self) -> float:
        return self.start + (time.time() - self.start) * self.rate

    def __getattr__(self, name: str):
        return getattr(time, name)
