"""The optimiser contract (gridhpo.testing.optimisers), one suite over every backend and algorithm,
then what each backend does beyond it."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from gridhpo.errors import ConfigError
from gridhpo.steering import optimisers
from gridhpo.steering.optimisers import Optimiser
from gridhpo.steering.space import Categorical, SearchSpace, parse_space
from gridhpo.testing.optimisers import (
    MIXED,
    MultiObjectiveContract,
    OptimiserCase,
    OptimiserContract,
    objective,
    run,
)

BACKENDS: list[tuple[str, str | None]] = [
    ("random", None), ("grid", None),
    ("hyperopt", "tpe"), ("hyperopt", "random"), ("hyperopt", "anneal"), ("hyperopt", "atpe"),
    ("skopt", "gp"), ("skopt", "rf"), ("skopt", "et"), ("skopt", "gbrt"),
    ("nevergrad", None), ("nevergrad", "TwoPointsDE"), ("nevergrad", "CMA"),
    ("optuna", "tpe"), ("optuna", "gp"), ("optuna", "cmaes"), ("optuna", "qmc"), ("optuna", "nsga2"),
    ("optuna", "random"),
    ("steering", None),
    ("auto", None),
]
# a user's own steering (iDDS contract) drawing random points; %SEED is our extension
STEERING = Path(__file__).parents[1] / "integration" / "evals" / "idds_steering.py"
IDS = [f"{b}-{a}" if a else b for b, a in BACKENDS]


def make(backend: str, algorithm: str | None, space: SearchSpace, seed: int = 7,
         options: dict[str, Any] | None = None, **kw: Any) -> Optimiser:
    opts = dict(options or {})
    if backend == "skopt":
        opts.setdefault("n_initial_points", 4)  # reach the model quickly
        # a smaller acquisition search keeps the suite fast; the model is still skopt's
        opts.setdefault("acq_optimizer", "sampling")
        opts.setdefault("acq_optimizer_kwargs", {"n_points": 500})
    if backend == "grid":
        # enough points on one parameter for the contract (8), few on many
        opts.setdefault("resolution", 20 if len(space) == 1 else 3)
    if (backend, algorithm) == ("optuna", "gp"):
        # PyTorch is not in the optimisers extra (its wheels bring gigabytes of CUDA libraries)
        pytest.importorskip("torch", reason="optuna's gp sampler needs PyTorch, which is not installed")
    if backend == "steering":
        opts.setdefault("command", f"{sys.executable} {STEERING} %IN %OUT %NUM_POINTS %MAX_POINTS --seed %SEED")
    klass = optimisers.get(backend)
    klass.check_space(space, algorithm, opts)
    return klass(space, seed=seed, algorithm=algorithm, options=opts, **kw)


class TestOptimisers(OptimiserContract):
    @pytest.fixture(params=BACKENDS, ids=IDS)
    def optimiser_case(self, request: pytest.FixtureRequest) -> OptimiserCase:
        backend, algorithm = request.param

        def make_it(space: SearchSpace, seed: int = 7, options: dict[str, Any] | None = None,
                    **kw: Any) -> Optimiser:
            return make(backend, algorithm, space, seed, options, **kw)
        return OptimiserCase(make_it, seeded=backend != "grid")


# every backend and algorithm that declares multi_objective
MULTI = [("optuna", "tpe"), ("optuna", "gp"), ("optuna", "nsga2"), ("nevergrad", None), ("nevergrad", "TwoPointsDE"),
         ("auto", None)]


class TestMultiObjective(MultiObjectiveContract):
    @pytest.fixture(params=MULTI, ids=[f"{b}-{a}" if a else b for b, a in MULTI])
    def optimiser_case(self, request: pytest.FixtureRequest) -> OptimiserCase:
        backend, algorithm = request.param

        def make_it(space: SearchSpace, seed: int = 7, options: dict[str, Any] | None = None,
                    **kw: Any) -> Optimiser:
            return make(backend, algorithm, space, seed, options, **kw)
        return OptimiserCase(make_it)


def test_the_multi_objective_list_is_every_backend_that_declares_it() -> None:
    declared = [(name, a) for name in optimisers.REGISTRY for a in optimisers.get(name).multi_objective]
    assert sorted(declared) == sorted([("optuna", "tpe"), ("optuna", "gp"), ("optuna", "nsga2"), ("nevergrad", "*"),
                                       ("auto", "*")])
    assert {(b, a or "*") for b, a in MULTI} >= set(declared)


def test_maximisation_is_turned_into_minimisation() -> None:
    space = parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    opt = optimisers.get("random")(space, seed=1, mode="max")
    s = opt.ask(1)[0]
    opt.tell(s.number, 3.0)
    assert opt.trials[s.number].value == -3.0


def test_grid_enumerates_once_in_order_then_ends() -> None:
    space = parse_space({"a": {"type": "categorical", "choices": ["x", "y"]},
                         "b": {"type": "float", "low": 0.0, "high": 1.0}})
    opt = make("grid", None, space, options={"resolution": 3})
    got = [s.params for s in opt.ask(10)]
    assert got == [{"a": a, "b": b} for a in ("x", "y") for b in (0.0, 0.5, 1.0)]
    assert opt.exhausted and opt.ask(1) == []


def test_discrete_space_is_exhausted_without_repeats() -> None:
    space = parse_space({"a": {"type": "categorical", "choices": [True, 1, 1.0, "1"]},
                         "b": {"type": "int", "low": 0, "high": 2}})
    for backend, algorithm in [("hyperopt", "tpe"), ("nevergrad", None), ("random", None)]:
        opt = make(backend, algorithm, space)
        got = []
        for _ in range(5):
            batch = opt.ask(3)
            for s in batch:
                opt.tell(s.number, objective(s.params))
            got += batch
        assert len({space.key(s.params) for s in got}) == len(got) == 12, backend
        assert opt.exhausted


def test_typo_in_backend_or_algorithm_names_close_matches() -> None:
    with pytest.raises(ConfigError, match="hyperopt"):
        optimisers.get("hyperopy")
    with pytest.raises(ConfigError, match="nevergrad"):
        optimisers.get("nevergrd")
    space = parse_space(MIXED)
    with pytest.raises(ConfigError, match="TwoPointsDE"):
        optimisers.get("nevergrad").check_space(space, "TwoPointDE", {})
    with pytest.raises(ConfigError, match="acq_func"):
        optimisers.get("skopt").check_space(space, "gp", {"acq_fun": "EI"})


@pytest.mark.parametrize("backend", ["skopt", "grid"])
def test_unbounded_normal_is_refused_by_bounded_backends(backend: str) -> None:
    space = parse_space({"x": {"type": "normal", "mu": 0.0, "sigma": 1.0}})
    with pytest.raises(ConfigError, match=r"search_space\.x"):
        optimisers.get(backend).check_space(space, None, {})


@pytest.mark.parametrize(("backend", "algorithm"), [("hyperopt", "tpe"), ("nevergrad", None), ("random", None)])
def test_normal_parameters_where_expressible(backend: str, algorithm: str | None) -> None:
    space = parse_space({"x": {"type": "normal", "mu": 0.0, "sigma": 1.0, "step": 0.5},
                         "y": {"type": "normal", "mu": -2.0, "sigma": 1.0, "log": True}})
    opt = make(backend, algorithm, space)
    for s in run(opt, 2, 4):
        space.validate_point(s.params)
        assert s.params["y"] > 0


def test_hyperopt_conditional_space_is_native() -> None:
    space = parse_space(MIXED)
    opt = make("hyperopt", "tpe", space)
    labels = set(opt._domain.params)  # type: ignore[attr-defined]
    assert "momentum" in labels and "seed" not in labels
    assert isinstance(space.by_name["opt"], Categorical)


def test_nevergrad_default_survives_a_long_continuous_run() -> None:
    """NGOpt's metamodel crashed after a dozen points with numpy 2.4 on Branin's space; the
    default must not."""
    space = parse_space({"x1": {"type": "float", "low": -5, "high": 10}, "x2": {"type": "float", "low": 0, "high": 15}})
    opt = optimisers.get("nevergrad")(space, seed=1, max_points=100, parallel=8)
    for _ in range(8):
        batch = opt.ask(8)
        assert len(batch) == 8
        for s in batch:
            opt.tell(s.number, (s.params["x1"] - 1) ** 2 + (s.params["x2"] - 2) ** 2)


OPTUNA_DETERMINISTIC = ["tpe", "qmc", "nsga2", "random"]


def _tell_all(opt: Optimiser, got: list[Any], order: list[int]) -> None:
    for i in order:
        s = got[i]
        if s.number % 7 == 3:
            opt.tell_failure(s.number)
        else:
            opt.tell(s.number, objective(s.params))


@pytest.mark.parametrize("algorithm", OPTUNA_DETERMINISTIC)
def test_optuna_next_points_depend_only_on_the_record(algorithm: str) -> None:
    """Two runs that told the same results in different orders, and a third rebuilt from the
    record, propose the same next points: what ``restore`` relies on after a restart."""
    space = parse_space(MIXED)
    a, b = (make("optuna", algorithm, space, options={"n_startup_trials": 6} if algorithm == "tpe" else None)
            for _ in range(2))
    for _ in range(2):
        got_a, got_b = a.ask(8), b.ask(8)
        assert [s.params for s in got_a] == [s.params for s in got_b]
        _tell_all(a, got_a, list(range(8)))
        _tell_all(b, got_b, [5, 2, 7, 0, 1, 6, 3, 4])
    in_flight_a, in_flight_b = a.ask(4), b.ask(4)
    assert [s.params for s in in_flight_a] == [s.params for s in in_flight_b]
    restored = make("optuna", algorithm, space, options=a.options)
    restored.restore([a.trials[n] for n in sorted(a.trials)])
    assert a.deterministic_restore
    nxt = [o.ask(4) for o in (a, b, restored)]
    assert [s.params for s in nxt[0]] == [s.params for s in nxt[1]] == [s.params for s in nxt[2]]


def test_optuna_tpe_sees_points_in_flight_as_running_trials() -> None:
    """Constant liar: the study TPE samples from holds every pending point as a RUNNING trial
    with its exact values, every result as COMPLETE; the scratch trial of each ask is FAIL."""
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState

    space = parse_space(MIXED)
    opt = make("optuna", "tpe", space)
    done = opt.ask(3)
    for s in done:
        opt.tell(s.number, objective(s.params))
    pending = opt.ask(2)
    study = opt._study  # type: ignore[attr-defined]
    sampler = study.sampler
    assert isinstance(sampler, TPESampler)
    assert sampler._multivariate and sampler._constant_liar and sampler._group  # conditional space: group
    running = study.get_trials(states=(TrialState.RUNNING,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(running) == 2 and len(complete) == 3
    flag = space.by_name["flag"]
    assert isinstance(flag, Categorical)
    for trial, s in zip(running, pending, strict=True):
        assert trial.params["flag"] == flag.index(s.params["flag"])  # the choice index: True, 1, 1.0 apart
        assert trial.params["lr"] == s.params["lr"]
        assert ("momentum" in trial.params) == ("momentum" in s.params)


def test_optuna_maps_every_type_faithfully() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = parse_space({**MIXED, "big": {"type": "int", "low": 1, "high": 1000, "log": True, "step": 3}})
    opt = make("optuna", "random", space)
    d = opt._searched  # type: ignore[attr-defined]
    assert d["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["width"] == IntDistribution(16, 256, log=True)
    assert d["layers"] == IntDistribution(1, 4)
    assert d["dropout"] == FloatDistribution(0.0, 0.5, step=0.05)
    assert d["decay"] == FloatDistribution(1e-4, 1e-1, log=True)  # log with step: snapped after the draw
    assert d["big"] == FloatDistribution(0.5, 1000.5, log=True)  # widened as SearchSpace.sample does
    assert d["flag"] == CategoricalDistribution([0, 1, 2, 3])
    assert "seed" not in d  # a fixed value is a constant, not searched
    for s in run(opt, 4, 8):
        space.validate_point(s.params)
        assert type(s.params["big"]) is int


def test_optuna_cmaes_restart_warm_starts_from_finished_points() -> None:
    space = parse_space({"x": {"type": "float", "low": -5.0, "high": 5.0},
                         "k": {"type": "int", "low": 0, "high": 9},
                         "c": {"type": "categorical", "choices": ["a", "b"]}})
    live = make("optuna", "cmaes", space)
    asked = run(live, rounds=4, batch=4)  # 13 finished, 3 failed (numbers 4, 9, 14)
    restored = make("optuna", "cmaes", space)
    restored.restore([live.trials[n] for n in sorted(live.trials)])
    assert not restored.deterministic_restore
    source = restored._source  # type: ignore[attr-defined]
    assert len(source) == 13 and all(set(t.params) == {"x", "k"} for t in source)
    known = {space.key(s.params) for s in asked}
    for s in run(restored, rounds=3, batch=4):
        space.validate_point(s.params)
        assert space.key(s.params) not in known


def test_optuna_refuses_what_it_cannot_run_at_submit() -> None:
    klass = optimisers.get("optuna")
    space = parse_space(MIXED)
    with pytest.raises(ConfigError, match="n_startup_trials"):
        klass.check_space(space, "tpe", {"n_startup_trial": 5})
    with pytest.raises(ConfigError, match=r"optimiser\.options\.n_startup_trials: 'ten' is not an integer"):
        klass.check_space(space, "tpe", {"n_startup_trials": "ten"})
    with pytest.raises(ConfigError, match=r"optimiser\.options: optuna nsga2 refuses"):
        klass.check_space(space, "nsga2", {"population_size": 1})
    with pytest.raises(ConfigError, match=r"search_space\.x"):
        klass.check_space(parse_space({"x": {"type": "normal", "mu": 0.0, "sigma": 1.0}}), "tpe", {})
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="PyTorch"):
            klass.check_space(space, "gp", {})


def test_optuna_missing_is_a_one_line_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)  # what an environment without optuna imports
    monkeypatch.delitem(sys.modules, "gridhpo.steering.optimisers.optuna", raising=False)
    with pytest.raises(ConfigError, match=r"gridhpo\[optimisers\]") as err:
        optimisers.get("optuna")
    assert "\n" not in str(err.value)
