"""Optimiser backends by name. ``get`` fails loudly, with the closest names, on a typo."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gridhpo import registry
from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.optimisers._base import Optimiser, Suggestion, Trial

if TYPE_CHECKING:
    from gridhpo.steering.taskfile import TaskSpec

# name -> "module:Class"; modules import their library only when chosen
REGISTRY: dict[str, str] = {
    "auto": "gridhpo.steering.optimisers.auto:AutoSearch",
    "random": "gridhpo.steering.optimisers.random:RandomSearch",
    "grid": "gridhpo.steering.optimisers.grid:GridSearch",
    "hyperopt": "gridhpo.steering.optimisers.hyperopt:HyperoptSearch",
    "skopt": "gridhpo.steering.optimisers.skopt:SkoptSearch",
    "nevergrad": "gridhpo.steering.optimisers.nevergrad:NevergradSearch",
    "optuna": "gridhpo.steering.optimisers.optuna:OptunaSearch",
    "steering": "gridhpo.steering.optimisers.external:ExternalSteering",
}
# optimiser.command, .image, .timeout: the program an external backend runs (optimiser.backend steering)
_PROGRAM = ("command", "image", "timeout")


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
    given = [k for k in _PROGRAM if getattr(o, k) is not None]
    if given and not klass.external:
        raise ConfigError(f"optimiser.{given[0]}: only the steering backend runs a program "
                          f"(backend {o.backend!r} is a library)")
    inside = [k for k in _PROGRAM if k in o.options]
    if inside:
        raise ConfigError(f"optimiser.options.{inside[0]}: give it as optimiser.{inside[0]}")
    _check_goals(spec, klass)
    klass.check_space(spec.search_space, o.algorithm, _options(spec))


def _check_goals(spec: TaskSpec, klass: type[Optimiser]) -> None:
    """A list objective or constraints need a backend that declares ``multi_objective``."""
    goals = spec.goals
    if not goals.plain and spec.early_stopping.scheduler != "none":
        raise ConfigError(f"early_stopping.scheduler: {spec.early_stopping.scheduler} judges points by one "
                          f"objective alone; with several objectives or constraints leave early_stopping out")
    if goals.plain or klass.takes_multi_objective(spec.optimiser.algorithm):
        return
    field = "objective" if goals.multi else "constraints"
    algo = f" {spec.optimiser.algorithm}" if spec.optimiser.algorithm else ""
    raise ConfigError(f"{field}: backend {spec.optimiser.backend}{algo} takes a single objective without "
                      f"constraints; multi-objective search and constraints need one of: "
                      f"{', '.join(multi_objective_backends())}")


def multi_objective_backends() -> list[str]:
    """"backend algorithm" for every installed backend that takes several objectives."""
    out = []
    for name in REGISTRY:
        try:
            klass = get(name)
        except (ConfigError, ImportError):  # a library not installed here
            continue
        out += [name if a == "*" else f"{name} {a}" for a in klass.multi_objective]
    return out


def _options(spec: TaskSpec) -> dict[str, Any]:
    """The backend's options; an external backend also gets its program from the optimiser section."""
    o = spec.optimiser
    return {**o.options, **{k: getattr(o, k) for k in _PROGRAM if getattr(o, k) is not None}}


def create(spec: TaskSpec) -> Optimiser:
    o = spec.optimiser
    b = spec.budget
    klass = get(o.backend)
    klass.check_libraries()  # a stored task on an install without the library fails alone
    goals = spec.goals
    return klass(spec.search_space, seed=o.seed, algorithm=o.algorithm,
                 mode=spec.objective.mode, options=_options(spec),
                 max_points=b.max_points, parallel=b.parallel + b.min_queued,
                 modes=goals.modes, constraints=len(goals.constraints))


def describe(stored: Mapping[str, Any]) -> str:
    """One line for ``gridhpo status`` and the report: the backend and algorithm of a stored
    task's optimiser section, and why, when backend auto chose them."""
    # tasks stored before auto existed lack "auto"; a section written by hand may lack more
    backend = stored["backend"] if "backend" in stored else "unknown"
    algorithm = stored["algorithm"] if "algorithm" in stored else None
    auto = stored["auto"] if "auto" in stored else None
    line = f"{backend} {algorithm}" if algorithm else str(backend)
    return f"{line} (chosen by auto: {auto})" if auto else line


__all__ = ["REGISTRY", "Optimiser", "Suggestion", "Trial", "check_spec", "create", "describe", "get",
           "multi_objective_backends"]
