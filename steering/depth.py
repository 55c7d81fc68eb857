"""How many points a task keeps in flight.

At least its budget's ``parallel + min_queued``, and more when its pilots finish points
faster than the steering's rounds replace them. A finished point's slot is refilled in the
round after its result arrives, so pilots that use ``r`` points a second idle unless about
``r`` times two rounds' worth of points wait in their queue (bandwidth times round trip, as
TCP sizes its window). The measured rate is itself held down by too small a depth, so the
target asks for twice that: the depth grows until the pilots, not the steering, set the
pace, and falls back when they slow down. Beside a large task that makes every round long,
a small task keeps its pilots busy this way (benchmarks/fairness.py).

Evaluations of minutes never see it (``r`` times a round is far below one point). Where it
acts, the extra points are, like ``min_queued``'s, points asked before the results of those
ahead of them: a model-based optimiser learns from fewer results per suggestion. That is the
price of pilots that do not wait, paid only by evaluations shorter than two rounds.
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
    _done: int = 0
    _since: float | None = None
    _backlogged: bool = False

    @property
    def target(self) -> int:
        """Points to keep queued or running."""
        return self.base + self.extra

    def update(self, now: float, done: int, round_seconds: float, backlogged: bool = False) -> None:
        """Measure the rate at which the task's pilots end points (``done``: the points no
        longer in flight, at ``now``) and set the depth for the steering's current
        ``round_seconds``. Ended points, not new ones: new points include those the depth
        itself adds, and a rate counted from them would feed on its own growth. A task
        ``backlogged`` in a round of the window (more of its events waiting than its share)
        is held back by the steering itself: more points in flight would only lengthen its
        backlog, so its depth falls back instead."""
        self._backlogged |= backlogged
        if self._since is None:
            self._done, self._since = done, now
            return
        elapsed = now - self._since
        if elapsed < WINDOW:
            return
        rate = (done - self._done) / elapsed
        self._done, self._since = done, now
        if self._backlogged:
            self.extra //= 2
            self._backlogged = False
        else:
            # (a revived paused point counts as one fewer ended: the rate can dip below 0)
            self.extra = min(self.base * (MAX_FACTOR - 1), max(0, math.ceil(4 * rate * round_seconds)))
