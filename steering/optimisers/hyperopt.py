"""hyperopt: ``tpe``, ``random``, ``anneal`` and ``atpe`` (the latter needs lightgbm).

The search space becomes one hyperopt expression; conditional parameters are native nested
``hp.choice`` branches, so an inactive parameter is not even drawn. Coordinates (what
hyperopt's history holds) follow ``_common``: a choice index, a grid index, a log-scale value
snapped to its grid, or hyperopt's own ``normal``/``qnormal``/``lognormal``/``qlognormal``.

State is one ``hyperopt.Trials`` kept up to date: a point is inserted when asked (state
running, no loss) and completed in place when told, so no ask replays the history. hyperopt
itself gives a point with no loss an infinite one in TPE: pending and failed points count as
bad observations, which keeps parallel asks away from them; any duplicate left is redrawn
with a derived seed, then from the prior. The seed of the ``k``-th ask is derived from
``(seed, k)`` and the history is inserted in point order, so a restored optimiser asks
exactly the same next points.
"""
from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Mapping
from typing import Any

from gridhpo.errors import ConfigError, OptimiserError
from gridhpo.steering.optimisers._base import Optimiser, Trial
from gridhpo.steering.optimisers._common import check_options, decode, derive_seed, draw_unseen, encode
from gridhpo.steering.space import Categorical, Fixed, Normal, Numeric, Param, Point, SearchSpace

log = logging.getLogger(__name__)

_OPTIONS = {
    "tpe": ("n_startup_jobs", "n_EI_candidates", "gamma", "prior_weight"),
    "anneal": ("avg_best_idx", "shrink_coef"),
    "random": (),
    "atpe": (),
}
_REDRAWS = 8
# hyperopt's TPE leaves its random start-up after n_startup_jobs points *asked* (its default 20),
# the points in flight included: with `parallel` of them, only 20 - parallel had results when
# its model began. The start-up is widened by the parallelism so that the model starts from
# 20 results (docs/optimisers.md, "Start-up points and parallelism")
_STARTUP_RESULTS = 20


def startup_jobs(parallel: int) -> int:
    return _STARTUP_RESULTS + max(parallel, 1) - 1


class HyperoptSearch(Optimiser):
    name = "hyperopt"
    libraries = ("hyperopt",)
    algorithms = ("tpe", "random", "anneal", "atpe")

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        algo = algorithm or cls.algorithms[0]
        check_options(f"hyperopt {algo}", options, _OPTIONS[algo])
        if algo == "atpe":
            try:
                import lightgbm  # noqa: F401
            except ImportError:
                raise ConfigError("optimiser.algorithm: hyperopt's atpe needs lightgbm "
                                  "(pip install lightgbm)") from None
            for p in space:
                if isinstance(p, Normal):
                    raise ConfigError(f"search_space.{p.name}: hyperopt's atpe cannot handle an unbounded "
                                      f"normal distribution; use algorithm tpe, anneal or random")

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        import hyperopt

        self._hp = hyperopt
        self._nodes: dict[str, Any] = {}
        try:
            self._domain = hyperopt.Domain(lambda _: 0.0, self._level([p for p in space if p.when is None]))
        except Exception as exc:  # hyperopt raises bare exceptions for a space it rejects
            raise OptimiserError(f"hyperopt cannot build the search space: {exc}") from exc
        self._labels = list(self._domain.params)
        self._trials = hyperopt.Trials()
        self._docs: dict[int, dict[str, Any]] = {}
        algo = self.algorithm
        mod = {"tpe": hyperopt.tpe, "random": hyperopt.rand, "anneal": hyperopt.anneal,
               "atpe": hyperopt.atpe}[algo]
        options = dict(self.options)
        if algo == "tpe":
            options.setdefault("n_startup_jobs", startup_jobs(self.parallel))
        self._suggest = functools.partial(mod.suggest, **options) if options else mod.suggest

    # ------------------------------------------------------------------ space

    def _level(self, params: list[Param]) -> dict[str, Any]:
        """The expression of ``params`` and, nested under each choice, what that choice activates."""
        out: dict[str, Any] = {}
        for p in params:
            if isinstance(p, Fixed):
                out.update(self._level(self._children(p, p.value)))
            else:
                out[p.name] = self._node(p)
        return out

    def _children(self, parent: Param, value: Any) -> list[Param]:
        return [c for c in self.space if c.when is not None and c.when.name == parent.name
                and c.when.holds({parent.name: value})]

    def _node(self, p: Param) -> Any:
        # a parameter active under several choices is one node shared by those branches
        if p.name in self._nodes:
            return self._nodes[p.name]
        hp = self._hp.hp
        node: Any
        if isinstance(p, Categorical):
            node = hp.choice(p.name, [self._level(self._children(p, v)) for v in p.choices])
        elif isinstance(p, Numeric):
            n = p.n_steps()
            if not p.log and n is not None:
                node = hp.quniform(p.name, -0.5, n - 0.5, 1)
            elif p.log:
                lo, hi = (p.low - 0.5, p.high + 0.5) if p.is_int else (p.low, p.high)
                node = hp.loguniform(p.name, math.log(lo), math.log(hi))
            else:
                node = hp.uniform(p.name, p.low, p.high)
        elif isinstance(p, Normal):
            if p.step is None:
                node = (hp.lognormal if p.log else hp.normal)(p.name, p.mu, p.sigma)
            else:
                node = (hp.qlognormal if p.log else hp.qnormal)(p.name, p.mu, p.sigma, p.step)
        else:
            raise OptimiserError(f"hyperopt: no mapping for parameter {p.name!r}")
        self._nodes[p.name] = node
        return node

    def _to_vals(self, point: Point) -> dict[str, list[Any]]:
        vals: dict[str, list[Any]] = {label: [] for label in self._labels}
        for p in self.space:
            if p.name in point and p.name in vals:
                # hyperopt's normal family stores the value itself, not the Gaussian draw
                vals[p.name] = [point[p.name] if isinstance(p, Normal) else encode(p, point[p.name])]
        return vals

    def _from_vals(self, vals: Mapping[str, list[Any]]) -> Point:
        point: Point = {}
        for p in self.space:
            if p.when is not None and not p.when.holds(point):
                continue
            if isinstance(p, Fixed):
                point[p.name] = p.value
            elif vals.get(p.name):
                v = vals[p.name][0]
                point[p.name] = float(v) if isinstance(p, Normal) else decode(p, v)
        return point

    # ------------------------------------------------------------------ history

    def _doc(self, trial: Trial) -> dict[str, Any]:
        vals = self._to_vals(trial.params)
        misc = {"tid": trial.number, "cmd": self._domain.cmd, "workdir": None,
                "idxs": {k: [trial.number] if v else [] for k, v in vals.items()}, "vals": vals}
        doc: dict[str, Any] = self._trials.new_trial_docs([trial.number], [None], [{"status": "new"}], [misc])[0]
        self._complete(doc, trial)
        return doc

    def _complete(self, doc: dict[str, Any], trial: Trial) -> None:
        h = self._hp
        if trial.state == "done":
            doc["state"], doc["result"] = h.JOB_STATE_DONE, {"status": h.STATUS_OK, "loss": trial.value}
        elif trial.state == "failed":
            doc["state"], doc["result"] = h.JOB_STATE_DONE, {"status": h.STATUS_FAIL}
        else:
            doc["state"], doc["result"] = h.JOB_STATE_RUNNING, {"status": h.STATUS_RUNNING}

    def _insert(self, trial: Trial) -> None:
        doc = self._doc(trial)
        self._docs[trial.number] = doc
        self._trials._insert_trial_docs([doc])

    def _restore(self) -> None:
        self._trials = self._hp.Trials()
        self._docs = {}
        for t in sorted(self.trials.values(), key=lambda t: t.number):
            self._insert(t)
        self._trials.refresh()

    def _tell(self, trial: Trial) -> None:
        doc = self._docs.get(trial.number)
        if doc is None:
            self._insert(trial)
        else:
            self._complete(doc, trial)
        self._trials.refresh()

    def _tell_failure(self, trial: Trial) -> None:
        self._tell(trial)

    # ------------------------------------------------------------------ ask

    def _ask(self, n: int) -> list[Point]:
        seen = self.seen_keys()
        out: list[Point] = []
        for number in range(self.next_number, self.next_number + n):
            point = self._suggest_one(number, seen)
            if point is None:
                break
            seen.add(self.space.key(point))
            out.append(point)
            # in flight from now on: later asks of this batch see it
            self._insert(Trial(number, point, "pending"))
            self._trials.refresh()
        return out

    def _atpe_view(self) -> Any:
        """atpe reads a loss and timestamps off every trial: failed points are left out and
        pending ones carry the worst loss seen (a constant liar)."""
        import datetime

        h = self._hp
        view = h.Trials()
        losses = [t.value for t in self.trials.values() if t.state == "done" and t.value is not None]
        lie = max(losses, default=0.0)
        epoch = datetime.datetime(2000, 1, 1)  # fixed: atpe's timing feature must not break restarts
        docs = []
        for number in sorted(self._docs):
            doc = self._docs[number]
            if doc["result"]["status"] == h.STATUS_FAIL:
                continue
            doc = dict(doc, book_time=epoch, refresh_time=epoch)
            if doc["result"]["status"] != h.STATUS_OK:
                doc["result"] = {"status": h.STATUS_OK, "loss": lie}
            docs.append(doc)
        view._insert_trial_docs(docs)
        view.refresh()
        return view

    def _call(self, number: int, trials: Any, seed: int) -> Any:
        if self.algorithm != "atpe":
            return self._suggest([number], self._domain, trials, seed)
        # atpe draws from the global random and numpy generators: seed them for the call only
        import random

        import numpy as np

        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(seed)
            np.random.seed(seed)
            return self._suggest([number], self._domain, trials, seed)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)

    def _suggest_one(self, number: int, seen: set[str]) -> Point | None:
        trials = self._atpe_view() if self.algorithm == "atpe" else self._trials
        for retry in range(_REDRAWS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    docs = self._call(number, trials, derive_seed(self.seed, number, retry))
            except Exception as exc:  # hyperopt's algorithms raise plain exceptions
                raise OptimiserError(f"hyperopt {self.algorithm} failed to suggest point {number}: {exc}") from exc
            point = self._from_vals(docs[0]["misc"]["vals"])
            if self.space.key(point) not in seen:
                return point
        log.debug("hyperopt: point %d kept repeating known points; drawn from the prior instead", number)
        return draw_unseen(self.space, self.seed, number, seen)
