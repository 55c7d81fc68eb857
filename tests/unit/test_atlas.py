"""The ATLAS hpogrid search-space format: every method with its documented meaning."""
from __future__ import annotations

import math
import random
import statistics
from typing import Any

import pytest

from gridhpo.errors import ConfigError
from gridhpo.steering.atlas import parse_atlas_space
from gridhpo.steering.space import Categorical, Fixed, Float, Int, Normal
from gridhpo.steering.taskfile import parse_task


def one(method: str, dimension: Any) -> Any:
    return parse_atlas_space({"x": {"method": method, "dimension": dimension}}).by_name["x"]


def draws(method: str, dimension: Any, n: int = 4000) -> list[Any]:
    space = parse_atlas_space({"x": {"method": method, "dimension": dimension}})
    rng = random.Random(5)
    return [space.sample(rng)["x"] for _ in range(n)]


def test_every_method_maps_to_its_meaning() -> None:
    assert one("categorical", {"categories": ["relu", True, 1], "grid_search": 0}) == \
        Categorical("x", choices=("relu", True, 1))
    assert one("uniform", {"low": 0.1, "high": 1.0}) == Float("x", low=0.1, high=1.0)
    assert one("uniformint", {"low": 1, "high": 30}) == Int("x", low=1, high=30)
    assert one("quniform", {"low": 0, "high": 10, "q": 2.5}) == Float("x", low=0.0, high=10.0, step=2.5)
    assert one("loguniform", {"low": 1e-6, "high": 0.1, "base": 10}) == Float("x", low=1e-6, high=0.1, log=True)
    assert one("qloguniform", {"low": 1, "high": 100, "q": 5}) == Float("x", low=5.0, high=100.0, log=True, step=5.0)
    assert one("normal", {"mu": 1, "sigma": 2}) == Normal("x", mu=1.0, sigma=2.0)
    assert one("qnormal", {"mu": 1, "sigma": 2, "q": 0.5}) == Normal("x", mu=1.0, sigma=2.0, step=0.5)
    ln = one("lognormal", {"mu": -2, "sigma": 1, "base": 10})
    assert isinstance(ln, Normal) and ln.log and math.isclose(ln.mu, -2 * math.log(10))
    assert one("qlognormal", {"mu": 0, "sigma": 1, "q": 2, "base": math.e}) == \
        Normal("x", mu=0.0, sigma=1.0, log=True, step=2.0)
    assert one("fixed", "adam") == Fixed("x", value="adam")
    assert one("fixed", {"value": 3}) == Fixed("x", value=3)


def test_loguniform_bounds_are_values_whatever_the_base() -> None:
    xs = draws("loguniform", {"low": 1e-6, "high": 1e-1, "base": 10})
    assert min(xs) >= 1e-6 and max(xs) <= 1e-1
    # log-uniform: the median is the geometric mean of the bounds
    assert math.isclose(math.log10(statistics.median(xs)), -3.5, abs_tol=0.15)


def test_lognormal_uses_its_base() -> None:
    xs = draws("lognormal", {"mu": -2, "sigma": 0.5, "base": 10})
    assert math.isclose(statistics.median(math.log10(x) for x in xs), -2, abs_tol=0.05)


def test_quantised_methods_return_multiples_of_q() -> None:
    for method, dim in [("quniform", {"low": 0.1, "high": 1.0, "q": 0.25}),
                        ("qloguniform", {"low": 1, "high": 50, "q": 5}),
                        ("qnormal", {"mu": 0, "sigma": 3, "q": 0.5})]:
        for x in draws(method, dim, 500):
            assert abs(x / dim["q"] - round(x / dim["q"])) < 1e-9, (method, x)
    assert set(draws("uniformint", {"low": 1, "high": 3}, 300)) == {1, 2, 3}


@pytest.mark.parametrize(("spec", "match"), [
    ({"method": "logunifrom", "dimension": {}}, "loguniform"),
    ({"method": "uniform", "dimension": {"low": 1}}, r"x\.dimension\.high"),
    ({"method": "uniform", "dimension": {"low": 1, "hihg": 2}}, "high"),
    ({"method": "loguniform", "dimension": {"low": 0, "high": 1}}, "positive"),
    ({"method": "uniformint", "dimension": {"low": 0.5, "high": 3}}, "integer"),
])
def test_bad_input_names_the_field(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_atlas_space({"x": spec})


def task(backend: str, space: dict[str, Any]) -> dict[str, Any]:
    return {"name": "atlas", "search_space": space, "optimiser": {"backend": backend},
            "evaluation": {"command": "true"}}


ATLAS = {"lr": {"method": "loguniform", "dimension": {"low": 1e-4, "high": 0.1, "base": 10}},
         "init": {"method": "normal", "dimension": {"mu": 0, "sigma": 1}}}


def test_task_file_reads_atlas_and_refuses_what_a_backend_cannot_express() -> None:
    spec = parse_task(task("hyperopt", ATLAS), "t.yaml")
    assert isinstance(spec.search_space.by_name["init"], Normal)
    # the stored form reads back the same
    from gridhpo.steering.taskfile import TaskSpec
    assert TaskSpec.from_dict(spec.to_dict()).search_space.to_dict() == spec.search_space.to_dict()
    for backend in ("skopt", "grid"):
        with pytest.raises(ConfigError, match=r"t\.yaml: search_space\.init: .*normal"):
            parse_task(task(backend, ATLAS), "t.yaml")
