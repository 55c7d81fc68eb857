"""How many points a task keeps in flight.

At least its budget's ``parallel + min_queued``, and more when its pilots finish points
faster than the steering's rounds replace them. A finished point's slot is refilled in the
round after its result arrives, so pilots that use ``r`` points a second idle unless about
``r`` times two rounds' worth of points wait in their queue (bandwidth times round trip, as
TCP sizes its window). The measured rate is itself held down by too small a depth, so the
target asks for twice that: the depth grows until the pilots, not the steering, set the
pace, and falls back when they slow down. Beside a large task that makes every round long,
a small task keeps its pilots busy this way (benchmarks/fairness.py).

Evaluations of minutes never see it (``r`` times a round is far below one point), and a
model-based optimiser hands out only the suggestions its worker has ready (see
``steering.driver``), so the extra points are not staler than ``min_queued`` makes them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# the most a task may keep in flight, as a multiple of parallel + min_queued
MAX_FACTOR = 8
# seconds over which a task's rate is measured
WINDOW = 1.0


@dataclass
class QueueDepth:
    base: int
    extra: int = 0
    _created: int = 0
    _since: float | None = None
    _backlogged: bool = False

    @property
    def target(self) -> int:
        """Points to keep queued or running."""
        return self.base + self.extra

    def update(self, now: float, created: int, round_seconds: float, backlogged: bool = False) -> None:
        """Measure the rate at which the task takes new points (``created`` so far, at
        ``now``) and set the depth for the steering's current ``round_seconds``. A task
        ``backlogged`` in a round of the window (more of its events waiting than its share)
        is held back by the steering itself: more points in flight would only lengthen its
        backlog, so its depth falls back instead."""
        self._backlogged |= backlogged
        if self._since is None:
            self._created, self._since = created, now
            return
        elapsed = now - self._since
        if elapsed < WINDOW:
            return
        rate = (created - self._created) / elapsed
        self._created, self._since = created, now
        if self._backlogged:
            self.extra //= 2
            self._backlogged = False
        else:
            self.extra = min(self.base * (MAX_FACTOR - 1), math.ceil(4 * rate * round_seconds))
