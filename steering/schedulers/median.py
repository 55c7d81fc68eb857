"""The median stopping rule (Golovin et al., 2017, Google Vizier).

After the warm-up (``grace`` steps, and at least ``min_points`` other points reported at
that step), a point is stopped when its best value so far is worse than the median of the
other points' values at the same step.
"""
from __future__ import annotations

import statistics

from gridhpo.steering.schedulers._base import History, Scheduler
from gridhpo.steering.taskfile import EarlyStopping


class MedianRule(Scheduler):
    name = "median"

    def __init__(self, config: EarlyStopping) -> None:
        super().__init__(config)
        self.min_points = int(config.options.get("min_points", 3))

    def _median_of_others(self, h: History, step: float) -> float | None:
        others = [v for n, o in self.points.items() if n != h.number
                  for v in [o.value_at(step)] if v is not None and o.last_step >= step]
        return statistics.median(others) if len(others) >= self.min_points else None

    def _judge(self, h: History, step: float) -> bool:
        median = self._median_of_others(h, step)
        return median is None or min(h.values.values()) <= median

    def revive(self, paused: list[int]) -> list[int]:
        ranked = []
        for number in paused:
            h = self.points.get(number)
            if h is None or not h.values:
                continue
            median = self._median_of_others(h, h.last_step)
            best = min(h.values.values())
            if median is not None and best <= median:
                ranked.append((best, number))
        return [n for _, n in sorted(ranked)]
