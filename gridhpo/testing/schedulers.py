"""The early-stopping Scheduler contract (gridhpo.steering.schedulers.Scheduler) as a pytest suite."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from gridhpo.steering.schedulers import Decision, Scheduler
from gridhpo.steering.taskfile import EarlyStopping

CONFIG = EarlyStopping(scheduler="asha", min_resource=1, max_resource=27, reduction_factor=3, grace=1)


@dataclass(frozen=True)
class SchedulerCase:
    """How to make the scheduler from a task's early_stopping section, and whether its rule
    ever stops a point (``none`` does not)."""

    make: Callable[[EarlyStopping], Scheduler]
    stops: bool = True


def history(seed: int, points: int = 30) -> list[tuple[int, float, float]]:
    """Reports (number, step, value) of points that start one after another and learn at
    different speeds, interleaved as pilots would deliver them."""
    rng = random.Random(seed)
    quality = [rng.uniform(0.1, 1.0) for _ in range(points)]
    reports = [(n, float(step), quality[n] + 1.0 / step) for n in range(points) for step in range(1, 28)]
    reports.sort(key=lambda r: (r[0] // 3 + r[1] / 4, r[0]))
    return reports


class SchedulerContract:
    """Subclass under a Test name with a ``scheduler_case`` fixture."""

    def test_decisions_are_deterministic(self, scheduler_case: SchedulerCase) -> None:
        a, b = scheduler_case.make(CONFIG), scheduler_case.make(CONFIG)
        reports = history(1)
        assert [a.report(*r) for r in reports] == [b.report(*r) for r in reports]

    def test_never_stops_inside_the_grace_period_or_at_the_end(self, scheduler_case: SchedulerCase) -> None:
        s = scheduler_case.make(replace(CONFIG, grace=5))
        for n, step, value in history(2):
            d = s.report(n, step, value)
            if step < 5 or step >= 27:
                assert d is Decision.CONTINUE

    def test_revive_turns_stops_into_pauses(self, scheduler_case: SchedulerCase) -> None:
        stop = scheduler_case.make(CONFIG)
        pause = scheduler_case.make(replace(CONFIG, revive=True))
        decisions = [(stop.report(*r), pause.report(*r)) for r in history(3)]
        for d_stop, d_pause in decisions:
            assert (d_stop is Decision.STOP) == (d_pause is Decision.PAUSE)
            assert d_pause is not Decision.STOP
        if scheduler_case.stops:
            assert any(d is Decision.STOP for d, _ in decisions), "the rule never stopped a bad point"
