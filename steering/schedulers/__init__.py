"""Early-stopping schedulers by name. Only ``none`` exists yet (see the early-stopping issue)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from gridhpo.errors import ConfigError, unknown_name

if TYPE_CHECKING:
    from gridhpo.steering.taskfile import TaskSpec

REGISTRY: dict[str, str] = {"none": ""}


def check_scheduler(spec: TaskSpec) -> None:
    name = spec.early_stopping.scheduler
    if name not in REGISTRY:
        raise ConfigError(f"early_stopping.scheduler: {unknown_name('scheduler', name, REGISTRY)}")
