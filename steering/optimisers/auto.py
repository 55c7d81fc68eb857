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
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gridhpo.errors import ConfigError
from gridhpo.steering.optimisers._base import Optimiser, Suggestion, Trial
from gridhpo.steering.optimisers._common import free_params
from gridhpo.steering.space import Normal, Numeric, Param, Point, SearchSpace

if TYPE_CHECKING:
    from gridhpo.steering.objectives import Goals
    from gridhpo.steering.taskfile import Budget
    from gridhpo.steering.taskfile import Optimiser as OptimiserSection

log = logging.getLogger(__name__)

NAME = "auto"
# Optuna's TPE draws its first 10 points at random (n_startup_trials): a budget no larger never
# reaches its model, and random search gives the same points' law at no cost
STARTUP = 10
_LIBRARIES = ("optuna", "hyperopt", "nevergrad", "torch")
# below this budget auto's multi-objective search is Optuna's TPE, from it on NSGA-II
# (docs/optimisers.md, "Multi-objective search"): TPE's hypervolume led at every budget measured
# (100 to 2000 points, 3 of 3 seeds at 2000), while its ask time grows linearly with the history
# (65 ms per point after 2000 points, 150 after 4000, 285 after 8000) and NSGA-II's stays near
# 10 ms: from 5000 points TPE's asks cost about 0.2 s each, and a run's total grows quadratically
NSGA2_FROM = 5000
# continuous spaces of at most this many free parameters go to hyperopt's anneal: on Branin (2-d)
# it was below Optuna's own TPE in every run through the steering (0.016 to 0.037 against 0.057),
# where Optuna's TPE was not. From 3 on, optuna's TPE (docs/optimisers.md, 2026-12-02): on
# Hartmann-3 anneal was behind it in both samples of 10 seeds (0.034 and 0.044 against 0.026 and
# 0.018), on Rosenbrock-4 ahead in one (2.6 against 5.0) and behind in the other (8.6 against
# 4.5), on Hartmann-6 well behind it
ANNEAL_UP_TO = 2
# where PyTorch is installed, spaces whose free parameters are at least a fifth continuous go to
# optuna's GP (docs/optimisers.md, 2026-12-02 and 03): it led every other column, Optuna's own TPE
# included, through the steering on Branin, Hartmann-3, Rosenbrock-4, Hartmann-6, mixed-10 (5
# continuous of 10), stepped-6 (2 of 6: 8.2e-05 against anneal's 0.36) and stepped-10 (2 of 10:
# 3.6e-05 against 0.56); the all-discrete HPOBench spaces stay with anneal: on the 8 datasets (10
# seeds, 2026-12-03) anneal was at or below Optuna's own TPE on 6 (mean ratio 0.85), the GP on 5
# (1.02); over 30 seeds anneal was worse than Optuna's own TPE on none of the 8 by a one-sided
# Mann-Whitney U test, our optuna TPE on one (vehicle). A fifth is the smallest share measured
GP_SHARE = 0.2
# with several objectives the GP was measured on spaces 6 of 6 and 4 of 6 continuous only
GP_SHARE_MULTI = 0.5
# up to this budget only: one GP ask costs 0.11 s after 10 points, 0.14 s after 100 and 1.3 s
# after 300, and grows with the cube of the history beyond (Cholesky of the kernel matrix)
GP_UP_TO = 300


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


def choose(space: SearchSpace, max_points: int, parallel: int, available: frozenset[str],
           objectives: int = 1, constraints: int = 0) -> Choice:
    """The backend and algorithm for a task, and why (docs/optimisers.md, "How auto chooses").
    No rule depends on ``parallel`` (it is in the reason): at 8 and at 32 points in flight of 100
    the same choices led."""
    free = free_params(space)
    if objectives > 1 or constraints:
        return choose_multi(space, max_points, available, objectives, constraints)
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
    if gp := gp_share(space, max_points, available, GP_SHARE):
        return Choice("optuna", "gp", f"{shape}, {gp}: optuna's GP led on such spaces (Branin, Hartmann, "
                                      f"mixed-10, stepped-6, stepped-10)")
    if discrete and "hyperopt" in available:
        return Choice("hyperopt", "anneal", f"{shape}, {len(discrete)} discrete or categorical parameter(s): "
                                            f"hyperopt's anneal led on such spaces (HPOBench, mixed-10)")
    if len(free) <= ANNEAL_UP_TO and "hyperopt" in available:
        return Choice("hyperopt", "anneal", f"{shape}, continuous, at most {ANNEAL_UP_TO} parameters: hyperopt's "
                                            f"anneal led on such spaces (Branin; not on Hartmann-3)")
    return Choice("optuna", "tpe", f"{shape}, continuous: optuna's TPE with constant liar")


def choose_multi(space: SearchSpace, max_points: int, available: frozenset[str], objectives: int,
                 constraints: int) -> Choice:
    """Several objectives or constraints: only a backend that takes them (docs/optimisers.md,
    "Multi-objective search")."""
    what = f"{objectives} objectives" if objectives > 1 else "one objective"
    what += f", {constraints} constraint(s)" if constraints else ""
    if any(isinstance(p, Normal) for p in space) or "optuna" not in available:
        if "nevergrad" in available:
            why = "an unbounded normal parameter" if "optuna" in available else "optuna is not installed"
            return Choice("nevergrad", None, f"{what} and {why}: nevergrad takes several objectives")
        raise ConfigError("objective: multi-objective search and constraints need optuna or nevergrad "
                          "(pip install 'gridhpo[optimisers]')")
    # the GP's expected hypervolume improvement takes the points in flight as a batch, where TPE's
    # constant liar counts them as bad results: through the steering, 10 seeds, ZDT1-6 11.730 and
    # ZDT1-mixed 11.708 against Optuna's own TPE's 10.980 and 10.696 (docs/optimisers.md, "Two
    # objectives: Optuna's GP"); constraints on one objective were not measured and keep TPE
    if objectives > 1 and (gp := gp_share(space, max_points, available, GP_SHARE_MULTI)):
        return Choice("optuna", "gp", f"{what}, {gp}: optuna's GP (expected hypervolume improvement, the points "
                                      f"in flight taken as a batch) led TPE on such spaces (ZDT1, docs/optimisers.md)")
    if max_points >= NSGA2_FROM:
        return Choice("optuna", "nsga2", f"{what}, {max_points} points (>= {NSGA2_FROM}): optuna's NSGA-II, whose "
                                         f"ask time stays small where TPE's grows with the history")
    return Choice("optuna", "tpe", f"{what}, {max_points} points (< {NSGA2_FROM}): optuna's multi-objective TPE "
                                   f"led NSGA-II up to 2000 points (docs/optimisers.md)")


def gp_share(space: SearchSpace, max_points: int, available: frozenset[str], share: float) -> str:
    """Why optuna's GP suits the task, or "" where it does not: PyTorch installed, no conditions,
    at least ``share`` of the free parameters continuous (and one) and at most ``GP_UP_TO`` points."""
    free = free_params(space)
    continuous = sum(1 for p in free if is_continuous(p))
    if "torch" not in available or space.is_conditional or not continuous or continuous < share * len(free) \
            or max_points > GP_UP_TO:
        return ""
    return f"{continuous} of {len(free)} parameters continuous, at most {GP_UP_TO} points"


def is_continuous(p: Param) -> bool:
    """A float range without a step (on a linear or log scale)."""
    return isinstance(p, Numeric) and not p.is_int and p.step is None


def resolve(section: OptimiserSection, space: SearchSpace, budget: Budget,
            goals: Goals | None = None) -> OptimiserSection:
    """The optimiser section with ``auto`` replaced by its choice (logged and kept in ``auto``);
    any other backend unchanged."""
    if section.backend != NAME:
        return section
    for key in ("algorithm", "command", "image"):
        if getattr(section, key) is not None:
            raise ConfigError(f"optimiser.{key}: backend auto chooses the algorithm itself; "
                              f"name a backend to choose one")
    AutoSearch.check_space(space, None, section.options)
    choice = choose(space, budget.max_points, budget.parallel + budget.min_queued, installed(),
                    len(goals.objectives) if goals else 1, len(goals.constraints) if goals else 0)
    log.info("optimiser auto chose %s", choice.describe())
    return dataclasses.replace(section, backend=choice.backend, algorithm=choice.algorithm, auto=choice.reason)


class AutoSearch(Optimiser):
    """The chosen backend behind the same contract: every call goes to it."""

    name = NAME
    algorithms = (NAME,)
    multi_objective = ("*",)  # it chooses a backend that takes them

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        if options:
            raise ConfigError("optimiser.options: backend auto takes no options (they belong to one backend); "
                              "name a backend to set them")

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        from gridhpo.steering.optimisers import get

        self.choice = choose(space, self.max_points or 100, self.parallel, installed(), len(self.modes),
                             self.constraints)
        log.info("optimiser auto chose %s", self.choice.describe())
        self.inner = get(self.choice.backend)(space, seed=self.seed, algorithm=self.choice.algorithm,
                                              mode=self.modes[0], max_points=self.max_points,
                                              parallel=self.parallel, modes=self.modes,
                                              constraints=self.constraints)
        self.deterministic_restore = self.inner.deterministic_restore

    def _sync(self) -> None:
        self.trials, self.next_number, self.exhausted = self.inner.trials, self.inner.next_number, self.inner.exhausted

    def ask(self, n: int = 1) -> list[Suggestion]:
        out = self.inner.ask(n)
        self._sync()
        return out

    def tell(self, number: int, value: float | Sequence[float], violations: Sequence[float] = ()) -> None:
        self.inner.tell(number, value, violations)
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
