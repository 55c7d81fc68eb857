"""The Optimiser contract (gridhpo.steering.optimisers.Optimiser) as a pytest suite."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from gridhpo.steering.optimisers import Optimiser, Trial
from gridhpo.steering.space import Numeric, SearchSpace, parse_space

MIXED = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "width": {"type": "int", "low": 16, "high": 256, "log": True},
    "layers": {"type": "int", "low": 1, "high": 4},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
    "decay": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True, "step": 1e-4},
    "flag": {"type": "categorical", "choices": [True, 1, 1.0, "1"]},
    "opt": {"type": "categorical", "choices": ["sgd", "adam"]},
    "momentum": {"type": "float", "low": 0.0, "high": 0.9, "step": 0.1, "when": {"opt": "sgd"}},
    "seed": {"type": "fixed", "value": 3},
}
# 5 * 4 * 4 * 3 * 2 * 6 = 2,880 combinations (>= 1,000), every point on a grid
DISCRETE = {
    "a": {"type": "int", "low": 0, "high": 4},
    "b": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
    "c": {"type": "categorical", "choices": [True, 1, 1.0, "1"]},
    "d": {"type": "int", "low": 2, "high": 8, "step": 3},
    "e": {"type": "categorical", "choices": ["x", "y"]},
    "f": {"type": "int", "low": 1, "high": 6, "log": True},
}



class MakeOptimiser(Protocol):
    """Makes the optimiser under test for ``space`` (``options`` on top of its own; the rest,
    ``max_points`` and ``parallel``, passed to its constructor). A one-parameter space must
    give at least 8 distinct points."""

    def __call__(self, space: SearchSpace, seed: int = 7, options: dict[str, Any] | None = None,
                 **kw: Any) -> Optimiser: ...


@dataclass(frozen=True)
class OptimiserCase:
    make: MakeOptimiser
    seeded: bool = True  # False: the same points whatever the seed (a grid)


def objective(point: dict[str, Any]) -> float:
    value = 0.0
    for v in point.values():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            value += math.log1p(abs(float(v)))
        else:
            value += len(str(v)) + (0.5 if isinstance(v, bool) else 0.0)
    return value


def run(opt: Optimiser, rounds: int, batch: int,
        result: Callable[[dict[str, Any]], tuple[Any, ...]] = lambda p: (objective(p),)) -> list[Any]:
    """Ask ``batch``, tell them (every fifth a failure; else ``tell``'s arguments after the
    number: ``result(params)``); return every suggestion."""
    asked = []
    for _ in range(rounds):
        got = opt.ask(batch)
        asked.extend(got)
        for s in got:
            if s.number % 5 == 4:
                opt.tell_failure(s.number)
            else:
                opt.tell(s.number, *result(s.params))
    return asked



class OptimiserContract:
    """Subclass under a Test name with an ``optimiser_case`` fixture."""

    def test_points_are_valid_and_keep_types_apart(self, optimiser_case: OptimiserCase) -> None:
        space = parse_space(MIXED)
        opt = optimiser_case.make(space)
        asked = run(opt, rounds=3, batch=4)
        assert [s.number for s in asked] == list(range(12))
        for s in asked:
            space.validate_point(s.params)  # bounds, steps, active parameters only
            flag = s.params["flag"]
            assert any(type(flag) is type(c) and flag == c for c in (True, 1, 1.0, "1"))
            assert ("momentum" in s.params) == (s.params["opt"] == "sgd")
            for p in space:
                if isinstance(p, Numeric) and p.is_int and p.name in s.params:
                    assert type(s.params[p.name]) is int

    def test_parallel_asks_never_repeat_a_point(self, optimiser_case: OptimiserCase) -> None:
        space = parse_space(DISCRETE)
        assert space.grid_size(100) >= 1000
        opt = optimiser_case.make(space, max_points=48, parallel=16)
        keys: list[str] = []
        in_flight = opt.ask(16)
        keys += [space.key(s.params) for s in in_flight]
        for _ in range(2):
            # half of the points finish, the other half stay in flight while 8 more are asked
            for s in in_flight[:8]:
                opt.tell(s.number, objective(s.params))
            in_flight = in_flight[8:] + opt.ask(8)
            keys += [space.key(s.params) for s in in_flight[-8:]]
        assert len(keys) == 32
        assert len(set(keys)) == len(keys)

    def test_restore_continues_without_evaluating(self, optimiser_case: OptimiserCase) -> None:
        space = parse_space(MIXED)
        live = optimiser_case.make(space)
        asked = run(live, rounds=2, batch=4)
        pending = live.ask(2)  # still in flight at the restart
        restored = optimiser_case.make(space)
        restored.restore([live.trials[n] if live.trials[n].value is None else
                          type(live.trials[n])(n, live.trials[n].params, live.trials[n].state, live.trials[n].value)
                          for n in sorted(live.trials)])
        assert restored.next_number == live.next_number == len(asked) + len(pending)
        assert {t.number for t in restored.pending} == {s.number for s in pending}
        a, b = live.ask(3), restored.ask(3)
        assert [s.number for s in a] == [s.number for s in b]
        known = {space.key(s.params) for s in asked + pending}
        for s in b:
            space.validate_point(s.params)
            assert space.key(s.params) not in known
        if live.deterministic_restore:
            assert [s.params for s in a] == [s.params for s in b]

    def test_same_seed_same_points_other_seed_other_points(self, optimiser_case: OptimiserCase) -> None:
        if not optimiser_case.seeded:
            pytest.skip("a grid has no seed")
        space = parse_space(MIXED)
        first = [s.params for s in run(optimiser_case.make(space, seed=1), 2, 3)]
        again = [s.params for s in run(optimiser_case.make(space, seed=1), 2, 3)]
        other = [s.params for s in run(optimiser_case.make(space, seed=2), 2, 3)]
        assert first == again
        assert first != other

    def test_failures_are_not_fake_results(self, optimiser_case: OptimiserCase) -> None:
        space = parse_space({"x": {"type": "float", "low": -5.0, "high": 5.0}})
        opt = optimiser_case.make(space)
        got = opt.ask(4)
        for s in got:
            opt.tell_failure(s.number)
        assert all(t.state == "failed" and t.value is None for t in opt.trials.values())
        more = opt.ask(4)
        assert len(more) == 4
        for s in more:
            space.validate_point(s.params)
            opt.tell(s.number, s.params["x"] ** 2)
        assert opt.trials[more[0].number].state == "done"


MODES = ("max", "min")  # two objectives in opposite directions, and one constraint


def vector(point: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(objectives, constraint violations) of a point: the second objective grows with the
    first's, so the two conflict; about half of the points violate the constraint."""
    a = objective(point)
    return [a, a * a + (1.0 if point.get("opt") == "sgd" else 0.0)], [a - 12.0]


def run_multi(opt: Optimiser, rounds: int, batch: int) -> list[Any]:
    """``run`` telling vectors with their violations (every fifth a failure)."""
    return run(opt, rounds, batch, vector)


class MultiObjectiveContract:
    """The contract of a backend declaring ``multi_objective``, in multi-objective search with a
    constraint. Subclass under a Test name with an ``optimiser_case`` fixture whose ``make``
    passes ``modes`` and ``constraints`` on to the optimiser."""

    @staticmethod
    def _make(case: OptimiserCase, space: SearchSpace, **kw: Any) -> Optimiser:
        opt = case.make(space, modes=MODES, constraints=1, **kw)
        assert opt.takes_multi_objective(opt.algorithm), f"{opt.name} {opt.algorithm} does not declare it"
        return opt

    def test_vectors_are_taken_and_points_stay_valid(self, optimiser_case: OptimiserCase) -> None:
        space = parse_space(MIXED)
        opt = self._make(optimiser_case, space)
        asked = run_multi(opt, rounds=4, batch=4)
        assert [s.number for s in asked] == list(range(16))
        for s in asked:
            space.validate_point(s.params)
            t = opt.trials[s.number]
            if t.state == "done":
                values, violations = vector(s.params)
                # kept minimised, in task order: the maximised objective negated
                assert t.values == (-values[0], values[1]) and t.value == -values[0]
                assert t.violations == tuple(violations)
        assert len({space.key(s.params) for s in asked}) == 16

    def test_a_vector_of_the_wrong_length_is_refused(self, optimiser_case: OptimiserCase) -> None:
        opt = self._make(optimiser_case, parse_space(MIXED))
        s = opt.ask(1)[0]
        with pytest.raises(ValueError, match="told 1 value"):
            opt.tell(s.number, 1.0, [0.0])
        with pytest.raises(ValueError, match="violation"):
            opt.tell(s.number, [1.0, 2.0])
        assert opt.trials[s.number].state == "pending"

    def test_parallel_asks_never_repeat_a_point(self, optimiser_case: OptimiserCase) -> None:
        space = parse_space(DISCRETE)
        opt = self._make(optimiser_case, space, max_points=48, parallel=16)
        in_flight = opt.ask(16)
        keys = [space.key(s.params) for s in in_flight]
        for _ in range(2):
            for s in in_flight[:8]:
                opt.tell(s.number, *vector(s.params))
            in_flight = in_flight[8:] + opt.ask(8)
            keys += [space.key(s.params) for s in in_flight[-8:]]
        assert len(keys) == 32 and len(set(keys)) == 32

    def test_restore_continues_without_evaluating(self, optimiser_case: OptimiserCase) -> None:
        space = parse_space(MIXED)
        live = self._make(optimiser_case, space)
        asked = run_multi(live, rounds=3, batch=4)
        pending = live.ask(2)
        restored = self._make(optimiser_case, space)
        # as the steering restores them: values in the task's direction, as recorded
        restored.restore([Trial(t.number, t.params, t.state, None if t.values is None else vector(t.params)[0][0],
                                None if t.values is None else tuple(vector(t.params)[0]), t.violations)
                          for t in (live.trials[n] for n in sorted(live.trials))])
        assert {n: t.values for n, t in restored.trials.items()} == {n: t.values for n, t in live.trials.items()}
        assert {t.number for t in restored.pending} == {s.number for s in pending}
        a, b = live.ask(3), restored.ask(3)
        assert [s.number for s in a] == [s.number for s in b]
        known = {space.key(s.params) for s in asked + pending}
        assert all(space.key(s.params) not in known for s in b)
        if live.deterministic_restore:
            assert [s.params for s in a] == [s.params for s in b]
