"""Optimiser backends by name. ``get`` fails loudly, with the closest names, on a typo."""
from __future__ import annotations

from typing import TYPE_CHECKING

from gridhpo import registry
from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.optimisers._base import Optimiser, Suggestion, Trial

if TYPE_CHECKING:
    from gridhpo.steering.taskfile import TaskSpec

# name -> "module:Class"; modules import their library only when chosen
REGISTRY: dict[str, str] = {
    "random": "gridhpo.steering.optimisers.random:RandomSearch",
    "grid": "gridhpo.steering.optimisers.grid:GridSearch",
    "hyperopt": "gridhpo.steering.optimisers.hyperopt:HyperoptSearch",
    "skopt": "gridhpo.steering.optimisers.skopt:SkoptSearch",
    "nevergrad": "gridhpo.steering.optimisers.nevergrad:NevergradSearch",
    "optuna": "gridhpo.steering.optimisers.optuna:OptunaSearch",
}


def get(name: str) -> type[Optimiser]:
    klass: type[Optimiser] = registry.load("optimiser backend", name, REGISTRY)
    return klass


def check_spec(spec: TaskSpec) -> None:
    """Refuse at submit time a backend, algorithm or space the backend cannot run."""
    o = spec.optimiser
    try:
        klass = get(o.backend)
    except ConfigError as exc:
        raise ConfigError(f"optimiser.backend: {exc}") from None
    klass.check_libraries()
    if o.algorithm is not None and klass.algorithms != ("*",) and o.algorithm not in klass.algorithms:
        err = unknown_name(f"{o.backend} algorithm", o.algorithm, klass.algorithms)
        raise ConfigError(f"optimiser.algorithm: {err}")
    klass.check_space(spec.search_space, o.algorithm, o.options)


def create(spec: TaskSpec) -> Optimiser:
    o = spec.optimiser
    b = spec.budget
    klass = get(o.backend)
    klass.check_libraries()  # a stored task on an install without the library fails alone
    return klass(spec.search_space, seed=o.seed, algorithm=o.algorithm,
                          mode=spec.objective.mode, options=o.options,
                          max_points=b.max_points, parallel=b.parallel + b.min_queued)


__all__ = ["REGISTRY", "Optimiser", "Suggestion", "Trial", "check_spec", "create", "get"]
