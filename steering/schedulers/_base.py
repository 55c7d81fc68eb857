"""The scheduler interface: early stopping and stop-and-go as decisions, never actions.

A scheduler sees the intermediate results of every point (the objective at a step of the
task's resource, e.g. the epoch) and answers each with a Decision. The steering carries the
decision out (a stop or pause message to the pilot running the point); the scheduler never
touches the service.
"""
from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import ClassVar

from gridhpo.steering.taskfile import EarlyStopping


class Decision(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"
    PAUSE = "pause"


@dataclass
class History:
    """The reports of one point: step -> value (the value in the direction minimised)."""

    number: int
    values: dict[float, float] = field(default_factory=dict)

    @property
    def last_step(self) -> float:
        return max(self.values) if self.values else 0.0

    def value_at(self, step: float) -> float | None:
        """The value last reported at or before ``step``."""
        below = [s for s in self.values if s <= step]
        return self.values[max(below)] if below else None


class Scheduler(abc.ABC):
    """Contract, tested for every scheduler by ``tests/unit/test_scheduler_contract.py``:

    - ``report(number, step, value)`` records one intermediate result (value to minimise: the
      steering negates it for ``mode: max``) and returns CONTINUE, STOP or PAUSE. It is
      deterministic: the same reports in the same order give the same decisions, so a
      restarted steering rebuilds the state by replaying the recorded reports.
    - A point never gets STOP/PAUSE before ``grace`` steps, nor at a step past
      ``max_resource``; with ``revive: true`` PAUSE replaces STOP.
    - ``revive(paused)`` ranks paused points (numbers) that are now worth resuming, best
      first; a scheduler that never revives returns [].
    - ``forget(number)`` drops a point that ended (finished, failed) from what it still judges.
    """

    name: ClassVar[str] = ""

    def __init__(self, config: EarlyStopping) -> None:
        self.config = config
        self.points: dict[int, History] = {}

    def report(self, number: int, step: float, value: float) -> Decision:
        h = self.points.setdefault(number, History(number))
        h.values[step] = value
        if step < self.config.grace or step >= self.config.max_resource:
            self._observe(h, step)
            return Decision.CONTINUE
        if self._judge(h, step):
            return Decision.CONTINUE
        return Decision.PAUSE if self.config.revive else Decision.STOP

    def revive(self, paused: list[int]) -> list[int]:
        return []

    def forget(self, number: int) -> None:
        """The point ended; its reports stay as evidence for the others."""

    def _observe(self, h: History, step: float) -> None:
        """Record without judging (inside the grace period or at the end)."""

    @abc.abstractmethod
    def _judge(self, h: History, step: float) -> bool:
        """True: let the point go on from ``step``."""


class NoScheduler(Scheduler):
    """Every point runs to its end."""

    name = "none"

    def _judge(self, h: History, step: float) -> bool:
        return True
