"""scikit-optimize: a surrogate model ``gp``, ``rf``, ``et`` or ``gbrt`` with its acquisition
functions (``acq_func``: gp_hedge, EI, PI, LCB, EIps, PIps; ``acq_optimizer``: auto,
sampling, lbfgs; ``acq_func_kwargs``, e.g. ``{xi: 0.01, kappa: 1.96}``).

The first ``n_initial_points`` (default ``max(10, 2 * parallel)``, ``initial_points``) points
come from the search space's own prior,
so every type keeps its meaning; afterwards the model is fitted on the finished points plus
the pending ones at a constant-liar value (``liar``: cl_min default, cl_mean, cl_max) and
skopt proposes the next batch with its own constant-liar strategy. The model is fitted once
per ask, from the recorded history, with a seed derived from ``(seed, point number)``:
that is one fit, as skopt's own ``tell`` does on every result, and it makes a restored
optimiser ask exactly the same next points. Failed points are skipped (skopt has no notion
of a failure) unless ``objective.failure_value`` turns them into values.

Coordinates follow ``_common``: a choice index, a grid index (``Integer``), a log-scale
``Real`` snapped to its grid. ``normal`` parameters are refused: skopt needs bounds.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from gridhpo.errors import ConfigError, OptimiserError
from gridhpo.steering.optimisers._base import Optimiser, Trial
from gridhpo.steering.optimisers._common import (
    check_options,
    derive_seed,
    draw_unseen,
    free_params,
    from_vector,
    is_indexed,
    liar,
    to_vector,
    widened,
)
from gridhpo.steering.space import Categorical, Normal, Numeric, Point, SearchSpace

log = logging.getLogger(__name__)

_OPTIONS = ("acq_func", "acq_optimizer", "acq_func_kwargs", "acq_optimizer_kwargs", "n_initial_points", "liar")
_ACQ = ("gp_hedge", "EI", "PI", "LCB", "EIps", "PIps")
_ACQ_OPT = ("auto", "sampling", "lbfgs")
_LIARS = ("cl_min", "cl_mean", "cl_max")


def initial_points(parallel: int) -> int:
    """Random points before the model: skopt's 10, and at least twice the points in flight, so
    that the first model is never fitted on fewer results than it has lies for the points in
    flight (docs/optimisers.md, "Start-up points and parallelism")."""
    return max(10, 2 * parallel)


class SkoptSearch(Optimiser):
    name = "skopt"
    libraries = ("skopt",)
    algorithms = ("gp", "rf", "et", "gbrt")

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        check_options("skopt", options, _OPTIONS)
        for key, allowed in (("acq_func", _ACQ), ("acq_optimizer", _ACQ_OPT), ("liar", _LIARS)):
            if key in options and options[key] not in allowed:
                raise ConfigError(f"optimiser.options.{key}: {options[key]!r} is not one of {', '.join(allowed)}")
        if options.get("acq_func") in ("EIps", "PIps"):
            raise ConfigError("optimiser.options.acq_func: EIps and PIps need evaluation times, which "
                              "gridhpo does not tell the optimiser; use gp_hedge, EI, PI or LCB")
        n0 = options.get("n_initial_points", 10)
        if isinstance(n0, bool) or not isinstance(n0, int) or n0 < 1:
            raise ConfigError(f"optimiser.options.n_initial_points: {n0!r} is not an integer >= 1")
        for key in ("acq_func_kwargs", "acq_optimizer_kwargs"):
            if not isinstance(options.get(key, {}), Mapping):
                raise ConfigError(f"optimiser.options.{key}: must be a mapping")
        for p in space:
            if isinstance(p, Normal):
                raise ConfigError(f"search_space.{p.name}: skopt needs bounds and cannot express an unbounded "
                                  f"normal distribution; use backend hyperopt, nevergrad or random")

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self._free = free_params(space)
        self._dims = [self._dimension(p) for p in self._free]
        self._n_initial = int(self.options.get("n_initial_points", initial_points(self.parallel)))
        self._liar = str(self.options.get("liar", "cl_min"))

    @staticmethod
    def _dimension(p: Any) -> Any:
        from skopt.space import Categorical as SkCategorical
        from skopt.space import Integer, Real

        if isinstance(p, Categorical):
            return SkCategorical(list(range(len(p.choices))), name=p.name)
        if isinstance(p, Numeric):
            if is_indexed(p):
                n = p.n_steps()
                assert n is not None
                return Integer(0, n - 1, name=p.name)
            if p.log:
                lo, hi = widened(p)
                return Real(lo, hi, prior="log-uniform", name=p.name)
            return Real(p.low, p.high, name=p.name)
        raise OptimiserError(f"skopt: no mapping for parameter {p.name!r}")

    def _estimator(self) -> Any:
        if self.algorithm != "gbrt":
            return self.algorithm.upper()
        # skopt 0.10 marks its GBRT a regressor the pre-1.6 scikit-learn way, which newer
        # releases no longer read; the tag is set again so skopt accepts it
        from sklearn.ensemble import GradientBoostingRegressor
        from skopt.learning import GradientBoostingQuantileRegressor

        class _GBRT(GradientBoostingQuantileRegressor):  # type: ignore[misc]
            def __sklearn_tags__(self) -> Any:
                tags = super().__sklearn_tags__()
                tags.estimator_type = "regressor"
                return tags

            def predict(self, X: Any, return_std: bool = False, return_quantiles: bool = False) -> Any:
                if not return_std or return_quantiles:
                    return super().predict(X, return_std=False, return_quantiles=return_quantiles)
                # skopt's own version calls numpy.in1d, gone in numpy 2.4; same formula
                q = list(self.quantiles)
                low, mid, high = (self.regressors_[q.index(v)].predict(X) for v in (0.16, 0.5, 0.84))
                return mid, (high - low) / 2.0

        rs = derive_seed(self.seed, self.next_number, "gbrt")
        return _GBRT(base_estimator=GradientBoostingRegressor(n_estimators=30, loss="quantile"), random_state=rs)

    def _tell(self, trial: Trial) -> None:
        pass  # the model is fitted from the history at the next ask

    def _ask(self, n: int) -> list[Point]:
        seen = self.seen_keys()
        done = [t for t in self.trials.values() if t.state == "done" and t.value is not None]
        out: list[Point] = []
        proposals: list[Point] = []
        if self._dims and len(done) >= self._n_initial:
            proposals = self._model_ask(n, done)
        for i, number in enumerate(range(self.next_number, self.next_number + n)):
            point: Point | None = proposals[i] if i < len(proposals) else None
            if point is None or self.space.key(point) in seen:
                point = draw_unseen(self.space, self.seed, number, seen)
            if point is None:
                break
            seen.add(self.space.key(point))
            out.append(point)
        return out

    def _model_ask(self, n: int, done: list[Trial]) -> list[Point]:
        from skopt import Optimizer

        pending = [t for t in self.trials.values() if t.state == "pending"]
        ys = [float(t.value) for t in sorted(done, key=lambda t: t.number) if t.value is not None]
        xs = [to_vector(self.space, self._free, t.params) for t in sorted(done, key=lambda t: t.number)]
        lie = liar(ys, self._liar)
        xs += [to_vector(self.space, self._free, t.params) for t in sorted(pending, key=lambda t: t.number)]
        ys += [lie] * len(pending)
        try:
            with warnings.catch_warnings():
                # skopt warns on every repeated point; duplicates are handled below
                warnings.simplefilter("ignore")
                opt = Optimizer(self._dims, base_estimator=self._estimator(), n_initial_points=0,
                                acq_func=self.options.get("acq_func", "gp_hedge"),
                                acq_optimizer=self.options.get("acq_optimizer", "auto"),
                                acq_func_kwargs=dict(self.options.get("acq_func_kwargs", {})),
                                acq_optimizer_kwargs=dict(self.options.get("acq_optimizer_kwargs", {})),
                                random_state=derive_seed(self.seed, self.next_number))
                opt.tell(xs, ys)
                raw = opt.ask(n_points=n, strategy=self._liar) if n > 1 else [opt.ask()]
        except (ValueError, RuntimeError, TypeError, ArithmeticError) as exc:
            raise OptimiserError(f"skopt {self.algorithm} failed to propose point {self.next_number}: {exc}") from exc
        return [from_vector(self.space, self._free, x) for x in raw]
