"""``early_stopping: {scheduler: pbt, options: {...}}``: population-based training.

PBT never stops a point early: its members run to ``max_resource`` in segments, and what it
decides at each segment's end (continue, or exploit another member's checkpoint with an
explored config) is the lifecycle core's (steering/lifecycle/pbt.py) with the pure
population of steering/population. This class is its entry in the schedulers' registry: it
reads and checks the settings, and answers every intermediate report with CONTINUE.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from gridhpo.errors import ConfigError
from gridhpo.steering.population import PBTConfig
from gridhpo.steering.schedulers._base import History, Scheduler
from gridhpo.steering.taskfile import EarlyStopping

if TYPE_CHECKING:
    from gridhpo.steering.taskfile import TaskSpec


class PBT(Scheduler):
    name = "pbt"

    def __init__(self, config: EarlyStopping) -> None:
        super().__init__(config)
        self.pbt = PBTConfig.from_options(config.options, "early_stopping.options")

    def _judge(self, h: History, step: float) -> bool:
        return True


def check_pbt(spec: TaskSpec) -> None:
    """The settings parse, and the budget makes exactly one point per member."""
    cfg = PBTConfig.from_options(spec.early_stopping.options, "early_stopping.options")
    if spec.budget.max_points != cfg.population:
        raise ConfigError(f"budget.max_points: a PBT task runs one point per member: set it to the population "
                          f"({cfg.population}), got {spec.budget.max_points}")
    if spec.early_stopping.revive:
        raise ConfigError("early_stopping.revive: PBT members never pause; leave revive out")
