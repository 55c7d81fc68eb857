"""Early-stopping schedulers by name; ``get`` fails loudly, with close matches, on a typo."""
from __future__ import annotations

from typing import TYPE_CHECKING

from gridhpo import registry
from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.schedulers._base import Decision, History, NoScheduler, Scheduler

if TYPE_CHECKING:
    from gridhpo.steering.taskfile import TaskSpec

REGISTRY: dict[str, str] = {
    "none": "gridhpo.steering.schedulers._base:NoScheduler",
    "asha": "gridhpo.steering.schedulers.asha:ASHA",
    "hyperband": "gridhpo.steering.schedulers.asha:Hyperband",
    "median": "gridhpo.steering.schedulers.median:MedianRule",
    "pbt": "gridhpo.steering.schedulers.pbt:PBT",
}


def get(name: str) -> type[Scheduler]:
    klass: type[Scheduler] = registry.load("scheduler", name, REGISTRY)
    return klass


def check_scheduler(spec: TaskSpec) -> None:
    name = spec.early_stopping.scheduler
    if name not in REGISTRY:
        raise ConfigError(f"early_stopping.scheduler: {unknown_name('scheduler', name, REGISTRY)}")
    if name == "pbt":
        from gridhpo.steering.schedulers.pbt import check_pbt

        check_pbt(spec)


def create(spec: TaskSpec) -> Scheduler:
    return get(spec.early_stopping.scheduler)(spec.early_stopping)


__all__ = ["REGISTRY", "Decision", "History", "NoScheduler", "Scheduler", "check_scheduler", "create", "get"]
