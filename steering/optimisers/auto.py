"""``backend: auto``, the default: a backend and algorithm chosen from the space, the budget and
the parallelism.

``choose`` is a pure function of (space, budget, parallelism, installed libraries); every rule
in it is backed by a measurement in docs/optimisers.md (section "How auto chooses"). The task
file resolves ``auto`` at submit time (``resolve``) and stores the choice with its reason, so a
task keeps the backend it started with even when a later release chooses differently, and
``gridhpo status TASK`` and the report show it. ``AutoSearch`` is the registry entry: built
directly (benchmarks, tests), it chooses the same way and delegates to the chosen backend.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gridhpo.errors import ConfigError
from gridhpo.steering.optimisers._base import Optimiser, Suggestion, Trial
from gridhpo.steering.optimisers._common import free_params
from gridhpo.steering.space import Normal, Numeric, Param, Point, SearchSpace

if TYPE_CHECKING:
    from gridhpo.steering.taskfile import Budget
    from gridhpo.steering.taskfile import Optimiser as OptimiserSection

log = logging.getLogger(__name__)

NAME = "auto"
# Optuna's TPE draws its first 10 points at random (n_startup_trials): a budget no larger never
# reaches its model, and random search gives the same points' law at no cost
STARTUP = 10
_LIBRARIES = ("optuna", "hyperopt")


@dataclasses.dataclass(frozen=True)
class Choice:
    backend: str
    algorithm: str | None
    reason: str

    def describe(self) -> str:
        algo = f" {self.algorithm}" if self.algorithm else ""
        return f"{self.backend}{algo} ({self.reason})"


def installed(libraries: Iterable[str] = _LIBRARIES) -> frozenset[str]:
    """The optimiser libraries importable here (without importing them)."""
    return frozenset(lib for lib in libraries if importlib.util.find_spec(lib) is not None)


def choose(space: SearchSpace, max_points: int, parallel: int, available: frozenset[str]) -> Choice:
    """The backend and algorithm for a task, and why (docs/optimisers.md, "How auto chooses")."""
    free = free_params(space)
    if not free:
        return Choice("random", None, "nothing to search: every parameter is fixed")
    if max_points <= STARTUP:
        return Choice("random", None, f"max_points {max_points} <= {STARTUP}: a model-based search "
                                      f"would still be in its random start-up")
    if any(isinstance(p, Normal) for p in free):
        if "hyperopt" in available:
            return Choice("hyperopt", "tpe", "an unbounded normal parameter: hyperopt's TPE models it natively "
                                             "(optuna and skopt need bounds)")
        return Choice("random", None, "an unbounded normal parameter and hyperopt is not installed "
                                      "(pip install 'gridhpo[optimisers]')")
    if "optuna" not in available:
        if "hyperopt" in available:
            return Choice("hyperopt", "tpe", "optuna is not installed (pip install 'gridhpo[optimisers]')")
        return Choice("random", None, "no model-based optimiser library is installed "
                                      "(pip install 'gridhpo[optimisers]')")
    discrete = [p.name for p in free if not is_continuous(p)]
    shape = f"{len(free)}-d{' conditional' if space.is_conditional else ''} space, {max_points} points, " \
            f"{parallel} in flight"
    if discrete and "hyperopt" in available:
        return Choice("hyperopt", "anneal", f"{shape}, {len(discrete)} discrete or categorical parameter(s): "
                                            f"hyperopt's anneal led on such spaces (HPOBench, mixed-10)")
    return Choice("optuna", "tpe", f"{shape}, continuous: optuna's TPE with constant liar")


def is_continuous(p: Param) -> bool:
    """A float range without a step (on a linear or log scale)."""
    return isinstance(p, Numeric) and not p.is_int and p.step is None


def resolve(section: OptimiserSection, space: SearchSpace, budget: Budget) -> OptimiserSection:
    """The optimiser section with ``auto`` replaced by its choice (logged and kept in ``auto``);
    any other backend unchanged."""
    if section.backend != NAME:
        return section
    for key in ("algorithm", "command", "image"):
        if getattr(section, key) is not None:
            raise ConfigError(f"optimiser.{key}: backend auto chooses the algorithm itself; "
                              f"name a backend to choose one")
    AutoSearch.check_space(space, None, section.options)
    choice = choose(space, budget.max_points, budget.parallel + budget.min_queued, installed())
    log.info("optimiser auto chose %s", choice.describe())
    return dataclasses.replace(section, backend=choice.backend, algorithm=choice.algorithm, auto=choice.reason)


class AutoSearch(Optimiser):
    """The chosen backend behind the same contract: every call goes to it."""

    name = NAME
    algorithms = (NAME,)

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        if options:
            raise ConfigError("optimiser.options: backend auto takes no options (they belong to one backend); "
                              "name a backend to set them")

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        from gridhpo.steering.optimisers import get

        self.choice = choose(space, self.max_points or 100, self.parallel, installed())
        log.info("optimiser auto chose %s", self.choice.describe())
        self.inner = get(self.choice.backend)(space, seed=self.seed, algorithm=self.choice.algorithm,
                                              mode="min" if self.sign > 0 else "max",
                                              max_points=self.max_points, parallel=self.parallel)
        self.deterministic_restore = self.inner.deterministic_restore

    def _sync(self) -> None:
        self.trials, self.next_number, self.exhausted = self.inner.trials, self.inner.next_number, self.inner.exhausted

    def ask(self, n: int = 1) -> list[Suggestion]:
        out = self.inner.ask(n)
        self._sync()
        return out

    def tell(self, number: int, value: float) -> None:
        self.inner.tell(number, value)
        self._sync()

    def tell_failure(self, number: int) -> None:
        self.inner.tell_failure(number)
        self._sync()

    def restore(self, trials: list[Trial]) -> None:
        self.inner.restore(trials)
        self._sync()

    # every public call is delegated: the hooks are never reached
    def _ask(self, n: int) -> list[Point]:
        raise NotImplementedError

    def _tell(self, trial: Trial) -> None:
        raise NotImplementedError
