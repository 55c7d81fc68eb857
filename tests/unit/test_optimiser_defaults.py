"""The backends' defaults that the quality benchmark chose (docs/optimisers.md)."""
from __future__ import annotations

from typing import Any

import pytest

from gridhpo.steering import optimisers
from gridhpo.steering.space import parse_space

CONTINUOUS = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": 1e-3, "high": 1.0,
                                                                      "log": True}}
WITH_CHOICE = {**CONTINUOUS, "c": {"type": "categorical", "choices": ["a", "b"]}}
WITH_INT = {**CONTINUOUS, "k": {"type": "int", "low": 1, "high": 9}}


def objective(p: dict[str, Any]) -> float:
    return float((p["x"] - 0.3) ** 2 + p["y"])


@pytest.mark.parametrize(("raw", "expected"), [(CONTINUOUS, "CMA"), (WITH_CHOICE, "Portfolio"),
                                               (WITH_INT, "Portfolio")])
def test_nevergrad_default_suits_the_space(raw: dict[str, Any], expected: str) -> None:
    opt = optimisers.get("nevergrad")(parse_space(raw), seed=1, max_points=30, parallel=4)
    assert opt.algorithm == expected
    for _ in range(3):
        for s in opt.ask(4):
            opt.tell(s.number, objective(s.params))
    assert len(opt.trials) == 12
    assert optimisers.get("nevergrad")(parse_space(WITH_CHOICE), algorithm="CMA").algorithm == "CMA"


def draws(backend: str, algorithm: str, parallel: int, n: int, **options: Any) -> list[dict[str, Any]]:
    """The first ``n`` points, asked ``parallel`` at a time and told in turn."""
    opt = optimisers.get(backend)(parse_space(WITH_CHOICE), seed=5, algorithm=algorithm, parallel=parallel,
                                  max_points=100, options=options)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        batch = opt.ask(parallel)
        out += [s.params for s in batch]
        for s in batch:
            opt.tell(s.number, objective(s.params))
    return out[:n]


def test_hyperopt_tpe_starts_its_model_after_20_results_whatever_the_parallelism() -> None:
    """hyperopt counts the points in flight in its start-up: with 8 of them, its model now
    starts at point 27 (20 results + 7 in flight), its random start-up being ``hyperopt
    random``'s points."""
    tpe, rand = draws("hyperopt", "tpe", 8, 32), draws("hyperopt", "random", 8, 32)
    assert tpe[:27] == rand[:27] and tpe[27:] != rand[27:]
    assert draws("hyperopt", "tpe", 8, 24, n_startup_jobs=20)[20:] != rand[20:24], "the option still overrides"


@pytest.mark.parametrize(("parallel", "first_fit"), [(1, 10), (4, 10), (8, 16)])
def test_skopt_fits_its_first_model_after_twice_the_points_in_flight(monkeypatch: pytest.MonkeyPatch,
                                                                      parallel: int, first_fit: int) -> None:
    """skopt's own 10 random points, and at least twice the points in flight (kept at
    ``parallel``: one asked as each result comes in)."""
    from gridhpo.steering.optimisers.skopt import SkoptSearch

    fits: list[int] = []
    monkeypatch.setattr(SkoptSearch, "_model_ask", lambda self, n, done: fits.append(len(done)) or [])
    opt = optimisers.get("skopt")(parse_space(WITH_CHOICE), seed=2, algorithm="gp", parallel=parallel)
    flight = opt.ask(parallel)
    while not fits:
        s = flight.pop(0)
        opt.tell(s.number, objective(s.params))
        flight += opt.ask(1)
    assert fits[0] == first_fit


def test_nevergrad_portfolio_serves_the_asks_past_max_points_the_steering_makes() -> None:
    """The steering keeps ``parallel`` points asked ahead, so the last asks of a task come past
    ``max_points``: Portfolio's samplers refused them ("Over the budget") and failed the task."""
    opt = optimisers.get("nevergrad")(parse_space(WITH_CHOICE), seed=3, max_points=20, parallel=4)
    assert opt.algorithm == "Portfolio"
    for _ in range(7):
        for s in opt.ask(4):
            opt.tell(s.number, objective(s.params))
    assert len(opt.trials) == 28


def test_optunas_gp_proposes_on_one_pytorch_thread_and_leaves_the_setting_as_it_was(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A steering runs many tasks on its cores: one task's GP must not spin an OpenMP worker per
    core (Optuna limits the threads only inside its fit and acquisition search)."""
    torch = pytest.importorskip("torch", reason="optuna's gp sampler needs PyTorch (pip install 'gridhpo[gp]')")
    from concurrent.futures import ThreadPoolExecutor

    from optuna.samplers import GPSampler

    seen: list[int] = []
    relative = GPSampler.sample_relative

    def counting(self: GPSampler, *args: Any) -> dict[str, Any]:
        seen.append(torch.get_num_threads())
        return relative(self, *args)

    monkeypatch.setattr(GPSampler, "sample_relative", counting)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        opt = optimisers.get("optuna")(parse_space(WITH_INT), seed=1, algorithm="gp", parallel=2)

        def run() -> int:  # in a worker thread, as the steering's optimiser driver asks
            for s in opt.ask(10):
                opt.tell(s.number, objective(s.params))
            opt.ask(1)
            return int(torch.get_num_threads())

        with ThreadPoolExecutor(1) as pool:
            after = pool.submit(run).result()
        assert seen and set(seen) == {1}
        assert after == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
