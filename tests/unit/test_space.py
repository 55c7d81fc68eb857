from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridhpo.errors import ConfigError
from gridhpo.steering.space import Categorical, Int, parse_space


def test_int_with_step_yields_only_multiples_from_low() -> None:
    space = parse_space({"n": {"type": "int", "low": 3, "high": 103, "step": 5}})
    rng = random.Random(0)
    seen = {space.sample(rng)["n"] for _ in range(2000)}
    assert seen <= {3 + 5 * k for k in range(21)}
    assert seen == {3 + 5 * k for k in range(21)}  # every grid value is reachable, the ends included


def test_float_step_and_log_are_respected() -> None:
    space = parse_space({
        "d": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    })
    rng = random.Random(1)
    points = [space.sample(rng) for _ in range(3000)]
    for p in points:
        assert any(p["d"] == round(0.05 * k, 12) for k in range(11))
        assert 1e-4 <= p["lr"] <= 1e-1
    # log-uniform: about a third of the draws in each decade
    decades = [sum(1 for p in points if 10 ** (e - 1) <= p["lr"] < 10**e) for e in (-3, -2, -1)]
    assert all(800 < d < 1200 for d in decades), decades


def test_log_int_covers_its_ends() -> None:
    space = parse_space({"w": {"type": "int", "low": 16, "high": 256, "log": True}})
    rng = random.Random(2)
    vals = [space.sample(rng)["w"] for _ in range(5000)]
    assert min(vals) == 16 and max(vals) == 256
    assert all(isinstance(v, int) for v in vals)


def test_categorical_keeps_types_apart() -> None:
    space = parse_space({"c": {"type": "categorical", "choices": [True, 1, 1.5, "1"]}})
    rng = random.Random(3)
    vals = [space.sample(rng)["c"] for _ in range(400)]
    assert {(type(v), v) for v in vals} == {(bool, True), (int, 1), (float, 1.5), (str, "1")}


def test_conditional_parameters_are_dropped_when_inactive() -> None:
    space = parse_space({
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}},
    })
    rng = random.Random(4)
    for _ in range(200):
        p = space.sample(rng)
        assert ("momentum" in p) == (p["optimizer"] == "sgd")
        space.validate_point(p)


@pytest.mark.parametrize(("spec", "message"), [
    ({"x": {"type": "float", "low": 1.0, "high": 1.0}}, "search_space.x: low (1.0) must be less than high (1.0)"),
    ({"x": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "search_space.x: log scale needs low > 0"),
    ({"x": {"type": "categorical", "choices": []}}, "search_space.x.choices: must be a non-empty list"),
    ({"x": {"type": "flaot", "low": 0, "high": 1}}, "did you mean 'float'"),
    ({"x": {"type": "int", "low": 0, "high": 10, "step": 3}}, "search_space.x.step: 3 does not divide the range 0..10"),
    ({"x": {"type": "float", "low": 0, "high": 1, "step": 0.3}}, "does not divide the range"),
    ({"x": {"type": "int", "low": 0.5, "high": 10}}, "search_space.x.low: 0.5 is not an integer"),
    ({"x": {"type": "float", "low": 0, "high": 1, "lgo": True}}, "'lgo'; did you mean 'low' or 'log'?"),
    ({"x": {"type": "categorical", "choices": ["a", "a"]}}, "'a' is listed twice"),
    ({"x": {"type": "fixed"}}, "search_space.x.value: is missing"),
    ({"x": {"type": "float", "low": 0, "high": 1, "when": {"y": 1}}}, "unknown parameter 'y'"),
    ({"a": {"type": "categorical", "choices": ["u"]}, "x": {"type": "float", "low": 0, "high": 1, "when": {"a": "v"}}},
     "search_space.x.when.a: 'v' is not one of ['u']"),
    ({}, "must be a non-empty mapping"),
    ({"x": {"type": "float", "low": -1.0e308, "high": 1.0e308}},
     "search_space.x: the range -1e+308..1e+308 is too wide (high - low overflows a float)"),
    ({"x": {"type": "float", "low": 0, "high": float("inf")}}, "search_space.x.high: inf is not a finite number"),
    ({"x": {"type": "float", "low": float("nan"), "high": 1}}, "search_space.x.low: nan is not a finite number"),
])
def test_invalid_spaces_get_one_line_errors(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_space(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_grid_enumeration_is_stable_and_complete() -> None:
    space = parse_space({
        "a": {"type": "categorical", "choices": ["x", "y"]},
        "b": {"type": "int", "low": 1, "high": 3},
        "c": {"type": "float", "low": 0.0, "high": 1.0},
    })
    grid = list(space.iter_grid(resolution=3))
    assert len(grid) == 2 * 3 * 3 == space.grid_size(3)
    assert grid == list(space.iter_grid(resolution=3))
    assert grid[0] == {"a": "x", "b": 1, "c": 0.0} and grid[-1] == {"a": "y", "b": 3, "c": 1.0}


@settings(max_examples=150, deadline=None)
@given(
    low=st.integers(-1000, 1000), span=st.integers(1, 500), step=st.integers(1, 50),
    log=st.booleans(), seed=st.integers(0, 2**32),
)
def test_sampled_ints_always_valid(low: int, span: int, step: int, log: bool, seed: int) -> None:
    high = low + span * step
    if log and low <= 0:
        low, high = 1, 1 + span * step
    spec = {"type": "int", "low": low, "high": high, "step": step, "log": log}
    space = parse_space({"n": spec})
    p = space.sample(random.Random(seed))
    param = space.by_name["n"]
    assert isinstance(param, Int) and param.contains(p["n"])
    assert (p["n"] - low) % step == 0


@settings(max_examples=150, deadline=None)
@given(low=st.floats(-1e6, 1e6), width=st.floats(1e-3, 1e6), log=st.booleans(), seed=st.integers(0, 2**32))
def test_sampled_floats_always_inside(low: float, width: float, log: bool, seed: int) -> None:
    if log:
        low = abs(low) + 1e-3
    high = low + width
    space = parse_space({"x": {"type": "float", "low": low, "high": high, "log": log}})
    x = space.sample(random.Random(seed))["x"]
    assert low <= x <= high and math.isfinite(x)


@pytest.mark.parametrize("backend_range", [(-8.9e307, 8.9e307), (-1e308, 7e307)])
def test_draws_and_grid_of_the_widest_accepted_range_are_valid(backend_range: tuple[float, float]) -> None:
    low, high = backend_range
    space = parse_space({"x": {"type": "float", "low": low, "high": high}})
    draws = {space.sample(random.Random(seed))["x"] for seed in range(50)}
    assert len(draws) == 50 and all(low <= x <= high and math.isfinite(x) for x in draws)
    grid = [p["x"] for p in space.iter_grid(resolution=5)]
    assert len(grid) == 5 and grid[0] == low and grid[-1] == pytest.approx(high) and all(map(math.isfinite, grid))


def test_round_trip_through_dict() -> None:
    raw = {
        "o": {"type": "categorical", "choices": ["sgd", "adam", 3, False]},
        "m": {"type": "float", "low": 0.1, "high": 0.9, "step": 0.1, "when": {"o": "sgd"}},
        "k": {"type": "fixed", "value": "v"},
        "w": {"type": "int", "low": 2, "high": 64, "log": True},
    }
    space = parse_space(raw)
    again = parse_space(space.to_dict())
    assert again.to_dict() == space.to_dict()
    assert isinstance(again.by_name["o"], Categorical)


def test_a_normal_with_a_fine_step_accepts_the_points_it_draws() -> None:
    """Found by the space fuzzer: with step 1e-09, -10.018242586 (what the snap to 12 decimals
    gives) was refused as off the grid, so a sampled point failed its own validation."""
    space = parse_space({"a": {"type": "normal", "mu": 0.0, "sigma": 5.0, "step": 1e-09}})
    p = space.params[0]
    assert p.contains(-10.018242586)
    assert not p.contains(-10.0182425865)  # half a step off is still refused
    rng = random.Random(1)
    for _ in range(2000):
        space.validate_point(space.sample(rng))


def test_a_wide_lognormal_never_draws_zero() -> None:
    """exp of a draw below about -745 is 0.0, outside a log space: once drawn by a fuzzer."""
    space = parse_space({"a": {"type": "normal", "mu": 0, "sigma": 372.0, "log": True}})
    p = space.params[0]
    assert p.decode(-1000.0) > 0 and p.contains(p.decode(-1000.0))
    rng = random.Random(1)
    for _ in range(2000):
        space.validate_point(space.sample(rng))
