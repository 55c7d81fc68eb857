"""nevergrad: any optimiser of ``nevergrad.optimizers.registry`` by its name (``algorithm``).

Default: ``CMA`` on a continuous space, ``Portfolio`` where the space has a categorical, int or
stepped parameter (``default_algorithm``: on such spaces CMA was worse than random search in
benchmarks/quality.py, docs/optimisers.md). nevergrad's own wizard ``NGOpt`` (any name of the registry can be chosen)
picks, on continuous spaces of a few dimensions, a metamodel optimiser that fails with numpy
2.4 after a dozen points (nevergrad 1.0.12, the latest release: ``float()`` of a one-element
array), so it cannot be the default. The budget (``budget.max_points`` plus twice the points in
flight, which the steering may ask past the end) and the number of
workers (``budget.parallel + budget.min_queued``) are given to every algorithm. Options:
``budget`` and ``num_workers`` override those two.

One live nevergrad optimiser serves the task: ``ask`` hands out its candidates and ``tell``
completes them, so points in flight are known to nevergrad natively (asked, not yet told)
and no ask replays the history. A candidate equal to a known point is told that point's
value if it has one, and redrawn; points of the fallback prior draw and every point after a
restart are told as "not asked" candidates. Failures are skipped (nevergrad has no notion of
a failure) unless ``objective.failure_value`` turns them into values.

Restart: the history is told in point order to a fresh optimiser with the same seed. That
rebuilds what nevergrad has learnt without evaluating, but not its exact internal state (the
order of asks and tells before the restart is not recorded), so ``deterministic_restore`` is
false: the next points after a restart are as good, not identical.

Multi-objective search (every algorithm, ``multi_objective``; default ``DE``): each result is
told as the vector of its (minimised) objectives; differential evolution compares the vectors
themselves, any other algorithm the one loss nevergrad makes of them (the hypervolume a point
adds to its own front, bounds set from the first results); constraints are told as
``constraint_violation`` (above 0: violated), which nevergrad adds as a penalty and keeps out
of its archive of bests.

Coordinates follow ``_common``: ``Choice`` over choice indices, an integer-cast ``Scalar`` over
grid indices, ``Log`` for log scales (snapped to the grid), ``Scalar`` for floats, and an
unbounded ``Scalar(init=mu)`` with mutation ``sigma`` for ``normal`` parameters.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from gridhpo.errors import ConfigError, OptimiserError, unknown_name
from gridhpo.steering.optimisers._base import Optimiser, Trial
from gridhpo.steering.optimisers._common import (
    check_options,
    draw_unseen,
    free_params,
    from_vector,
    is_indexed,
    to_vector,
    widened,
)
from gridhpo.steering.space import Categorical, Normal, Numeric, Param, Point, SearchSpace

log = logging.getLogger(__name__)

DEFAULT = "CMA"
# the default where the space has a categorical or a discrete parameter: CMA is worse than
# random search there (docs/optimisers.md, "nevergrad's default")
DISCRETE_DEFAULT = "Portfolio"
# the default with several objectives: nevergrad's differential evolution compares the losses
# themselves ("multiobjective_adaptation"), the others one hypervolume-based number; CMA was
# worse than random search on ZDT1 (docs/optimisers.md, "Multi-objective search")
MULTI_DEFAULT = "DE"


def default_algorithm(space: SearchSpace) -> str:
    discrete = any(isinstance(p, Categorical) or (isinstance(p, Numeric) and is_indexed(p))
                   for p in free_params(space))
    return DISCRETE_DEFAULT if discrete else DEFAULT
_REDRAWS = 16


class NevergradSearch(Optimiser):
    name = "nevergrad"
    libraries = ("nevergrad",)
    algorithms = ("*",)
    multi_objective = ("*",)
    deterministic_restore = False

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        import nevergrad as ng

        check_options("nevergrad", options, ("budget", "num_workers"))
        name = algorithm or default_algorithm(space)
        if name not in ng.optimizers.registry:
            err = unknown_name("nevergrad optimiser", name, ng.optimizers.registry,
                               full_list="nevergrad.optimizers.registry")
            raise ConfigError(f"optimiser.algorithm: {err}")
        for key in ("budget", "num_workers"):
            v = options.get(key, 1)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"optimiser.options.{key}: {v!r} is not an integer >= 1")

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if self.algorithm == "*":
            self.algorithm = MULTI_DEFAULT if len(self.modes) > 1 else default_algorithm(space)
        self._free = free_params(space)
        self._names = [p.name for p in self._free]
        self._opt: Any = None
        self._candidates: dict[int, Any] = {}

    # ------------------------------------------------------------------ library

    @staticmethod
    def _parameter(p: Param) -> Any:
        import nevergrad as ng

        if isinstance(p, Categorical):
            return ng.p.Choice(list(range(len(p.choices))))
        if isinstance(p, Numeric):
            if is_indexed(p):
                n = p.n_steps()
                assert n is not None
                return ng.p.Scalar(lower=0, upper=n - 1).set_integer_casting()
            if p.log:
                lo, hi = widened(p)
                return ng.p.Log(lower=lo, upper=hi)
            return ng.p.Scalar(lower=p.low, upper=p.high)
        if isinstance(p, Normal):
            return ng.p.Scalar(init=p.mu).set_mutation(sigma=p.sigma)
        raise OptimiserError(f"nevergrad: no mapping for parameter {p.name!r}")

    def _optimiser(self) -> Any:
        if self._opt is None:
            import nevergrad as ng
            import numpy as np

            param = ng.p.Dict(**{p.name: self._parameter(p) for p in self._free})
            param.random_state = np.random.RandomState(self.seed)
            # the steering asks up to ``parallel`` points ahead, past max_points at the end of a
            # task; Portfolio's samplers refuse an ask past their budget
            budget = self.options.get("budget", (self.max_points or 100) + 2 * max(self.parallel, 1))
            workers = int(self.options.get("num_workers", max(self.parallel, 1)))
            try:
                self._opt = ng.optimizers.registry[self.algorithm](parametrization=param, budget=budget,
                                                                   num_workers=workers)
            except Exception as exc:  # nevergrad raises plain exceptions for unusable settings
                raise OptimiserError(f"nevergrad {self.algorithm} cannot be built: {exc}") from exc
        return self._opt

    def _value(self, point: Point) -> dict[str, Any]:
        return dict(zip(self._names, to_vector(self.space, self._free, point), strict=True))

    def _tell_library(self, trial: Trial) -> None:
        opt = self._optimiser()
        cand = self._candidates.pop(trial.number, None)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if cand is None:
                    cand = opt.parametrization.spawn_child(new_value=self._value(trial.params))
                self._tell_result(opt, cand, trial)
        except Exception as exc:  # nevergrad raises plain exceptions
            raise OptimiserError(f"nevergrad {self.algorithm} refused the result of point "
                                 f"{trial.number}: {exc}") from exc

    @staticmethod
    def _tell_result(opt: Any, cand: Any, trial: Trial) -> None:
        """Tell nevergrad a result: the loss, or (multi-objective) every loss, and the violations."""
        loss: Any = list(trial.values) if trial.values is not None and len(trial.values) > 1 else \
            float(trial.value if trial.value is not None else 0.0)
        if trial.violations:
            opt.tell(cand, loss, constraint_violation=list(trial.violations))
        else:
            opt.tell(cand, loss)

    # ------------------------------------------------------------------ hooks

    def _tell(self, trial: Trial) -> None:
        if self._free:
            self._tell_library(trial)

    def _tell_failure(self, trial: Trial) -> None:
        self._candidates.pop(trial.number, None)  # the candidate stays unanswered, as nevergrad allows

    def _restore(self) -> None:
        self._opt = None
        self._candidates = {}
        for t in sorted(self.trials.values(), key=lambda t: t.number):
            if t.state == "done":
                self._tell(t)

    def _ask(self, n: int) -> list[Point]:
        seen = self.seen_keys()
        by_key = {self.space.key(t.params): t for t in self.trials.values()}
        out: list[Point] = []
        for number in range(self.next_number, self.next_number + n):
            point = self._ask_one(number, seen, by_key) if self._free else None
            if point is None:
                point = draw_unseen(self.space, self.seed, number, seen)
            if point is None:
                break
            seen.add(self.space.key(point))
            out.append(point)
        return out

    def _ask_one(self, number: int, seen: set[str], by_key: dict[str, Trial]) -> Point | None:
        opt = self._optimiser()
        for _ in range(_REDRAWS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cand = opt.ask()
            except Exception as exc:  # nevergrad raises plain exceptions
                raise OptimiserError(f"nevergrad {self.algorithm} failed to propose point {number}: {exc}") from exc
            point = from_vector(self.space, self._free, [cand.value[k] for k in self._names])
            key = self.space.key(point)
            if key not in seen:
                self._candidates[number] = cand
                return point
            known = by_key.get(key)
            if known is not None and known.state == "done" and known.value is not None:
                # a real result: that point was evaluated already
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._tell_result(opt, cand, known)
        log.debug("nevergrad: point %d kept repeating known points; drawn from the prior instead", number)
        return None
