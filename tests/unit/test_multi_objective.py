"""Multi-objective search without servers: the Pareto front and hypervolume against brute force,
the task file's objectives and constraints (one-line errors), the refusal at submit, auto's
choice, the lifecycle core (values kept, constraints judged, infeasible never best), the
restore from the bookkeeping, and the report's figures."""
from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridhpo.bookkeeping.records import PointUpdate
from gridhpo.errors import ConfigError
from gridhpo.protocol import Event
from gridhpo.steering import schedulers
from gridhpo.steering.lifecycle import TaskLifecycle
from gridhpo.steering.lifecycle.effects import Tell
from gridhpo.steering.lifecycle.events import AttemptsCreated, PointsCreated, Received, Suggested
from gridhpo.steering.optimisers import Suggestion, auto
from gridhpo.steering.optimisers.auto import GP_UP_TO, NSGA2_FROM, choose
from gridhpo.steering.pareto import dominates, front, hypervolume
from gridhpo.steering.space import parse_space
from gridhpo.steering.taskfile import TaskSpec, parse_task

vectors = st.lists(st.tuples(*[st.integers(0, 6)] * 2), min_size=1, max_size=30) | \
    st.lists(st.tuples(*[st.integers(0, 4)] * 3), min_size=1, max_size=20)


@given(vectors)
@settings(max_examples=300, deadline=None)
def test_the_front_is_every_vector_no_other_dominates(vs: list[tuple[int, ...]]) -> None:
    brute = [i for i, v in enumerate(vs)
             if not any(all(w[d] <= v[d] for d in range(len(v))) and w != v for w in vs)]
    assert front(vs) == brute
    assert all(not dominates(vs[j], vs[i]) for i in front(vs) for j in range(len(vs)))


@given(vectors)
@settings(max_examples=200, deadline=None)
def test_the_hypervolume_counts_the_dominated_unit_cells(vs: list[tuple[int, ...]]) -> None:
    """On integer vectors the dominated region is a union of unit cells: count them one by one."""
    dims = len(vs[0])
    ref = (7,) * dims if dims == 2 else (5,) * dims
    cells = sum(1 for c in itertools.product(*[range(r) for r in ref])
                if any(all(v[d] <= c[d] for d in range(dims)) for v in vs))
    assert hypervolume(vs, ref) == pytest.approx(cells)


BASE: dict[str, Any] = {
    "name": "mo", "search_space": {"x": {"type": "float", "low": 0, "high": 1},
                                   "k": {"type": "categorical", "choices": ["a", "b"]}},
    "objective": [{"metric": "acc", "mode": "max"}, {"metric": "lat", "mode": "min"}],
    "constraints": [{"metric": "mem", "max": 16}, {"metric": "acc", "min": 0.1}],
    "optimiser": {"backend": "optuna", "algorithm": "tpe", "seed": 1},
    "budget": {"max_points": 20, "parallel": 2},
    "evaluation": {"python": "m:f"},
}


def task(**changes: Any) -> TaskSpec:
    return parse_task({**BASE, **changes}, "mo.yaml")


def test_a_list_objective_and_constraints_are_stored_as_written_and_read_back() -> None:
    spec = task()
    assert spec.objective.metric == "acc" and spec.goals.metrics == ("acc", "lat")
    assert spec.goals.modes == ("max", "min")
    stored = spec.to_dict()
    assert stored["objective"] == [{"metric": "acc", "mode": "max", "failure_value": None, "exhausted_value": None},
                                   {"metric": "lat", "mode": "min", "failure_value": None, "exhausted_value": None}]
    assert stored["constraints"] == [{"metric": "mem", "max": 16.0}, {"metric": "acc", "min": 0.1}]
    assert TaskSpec.from_dict(stored).goals == spec.goals
    single = task(objective={"metric": "loss"}, constraints=None, optimiser={"backend": "random"})
    assert single.to_dict()["objective"] == {"metric": "loss", "mode": "min", "failure_value": None,
                                             "exhausted_value": None}
    assert "constraints" not in single.to_dict()


@pytest.mark.parametrize(("changes", "message"), [
    ({"objective": []}, "mo.yaml: objective: is an empty list"),
    ({"objective": [{"metric": "a", "mode": "up"}, {"metric": "b"}]},
     "mo.yaml: objective[0].mode: 'up' is not one of min, max"),
    ({"objective": [{"metric": "a"}, {"metric": "a"}]}, "mo.yaml: objective[1].metric: 'a' is named twice"),
    ({"objective": [{"metric": "a"}, {"metrc": "b"}]}, "mo.yaml: objective[1]: unknown key 'metrc'"),
    ({"objective": [{"metric": "a", "failure_value": 1}, {"metric": "b"}]},
     "mo.yaml: objective[0].failure_value: is for a single objective"),
    ({"constraints": {"metric": "m", "max": 1}}, "mo.yaml: constraints: must be a list"),
    ({"constraints": [{"metric": "m"}]}, "mo.yaml: constraints[0]: needs min, max or both"),
    ({"constraints": [{"max": 3}]}, "mo.yaml: constraints[0].metric: is missing"),
    ({"constraints": [{"metric": "m", "max": "big"}]}, "mo.yaml: constraints[0].max: 'big' is not a finite number"),
    ({"constraints": [{"metric": "m", "min": 3, "max": 1}]}, "mo.yaml: constraints[0].max: 1 is less than min (3)"),
    ({"constraints": [{"metric": "m", "maximum": 1}]}, "mo.yaml: constraints[0]: unknown key 'maximum'"),
    ({"objective": {"metric": "a", "failure_value": 1}},
     "mo.yaml: objective.failure_value: cannot go with constraints"),
    ({"objective": [{"metric": "a"}, {"metric": "b", "exhausted_value": 1e9}]},
     "mo.yaml: objective[1].exhausted_value: is for a single objective"),
    ({"objective": {"metric": "a", "exhausted_value": 1e9}},
     "mo.yaml: objective.exhausted_value: cannot go with constraints"),
    ({"early_stopping": {"scheduler": "asha"}}, "mo.yaml: early_stopping.scheduler: asha judges points by one"),
])
def test_bad_objectives_and_constraints_get_one_line_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        task(**changes)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("section", [{"backend": "hyperopt", "algorithm": "tpe"}, {"backend": "random"},
                                     {"backend": "optuna", "algorithm": "cmaes"}, {"backend": "skopt"}])
@pytest.mark.parametrize("goals", [{}, {"objective": {"metric": "acc"}}], ids=["two-objectives", "constraints-only"])
def test_a_single_objective_backend_is_refused_naming_those_that_can(section: dict[str, Any],
                                                                     goals: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        task(optimiser=section, **goals)
    field = "constraints" if goals else "objective"
    assert str(err.value).startswith(f"mo.yaml: {field}: backend {section['backend']}")
    assert str(err.value).endswith("need one of: auto, nevergrad, optuna tpe, optuna gp, optuna nsga2")


def test_auto_chooses_a_multi_objective_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    space = parse_space(BASE["search_space"])
    both = frozenset({"optuna", "hyperopt", "nevergrad"})
    assert (choose(space, 100, 8, both, 2).backend, choose(space, 100, 8, both, 2).algorithm) == ("optuna", "tpe")
    big = choose(space, NSGA2_FROM, 8, both, 3)
    assert (big.backend, big.algorithm) == ("optuna", "nsga2")
    assert choose(space, 2000, 8, both, 2).algorithm == "tpe", "TPE still led NSGA-II at 2000 points"
    assert choose(space, 100, 8, both, 1, 1).algorithm == "tpe"  # constraints alone
    assert choose(space, 100, 8, frozenset({"nevergrad"}), 2).backend == "nevergrad"
    normal = parse_space({"w": {"type": "normal", "mu": 0, "sigma": 1}})
    assert choose(normal, 100, 8, both, 2).backend == "nevergrad"
    with pytest.raises(ConfigError, match="need optuna or nevergrad"):
        choose(space, 100, 8, frozenset({"hyperopt"}), 2)
    monkeypatch.setattr(auto, "installed", lambda: both)  # the same choice with or without PyTorch here
    spec = task(optimiser=None)
    assert (spec.optimiser.backend, spec.optimiser.algorithm) == ("optuna", "tpe")
    assert "2 objectives, 2 constraint(s)" in (spec.optimiser.auto or "")


def test_with_pytorch_auto_chooses_optunas_gp_for_several_objectives_on_mostly_continuous_spaces() -> None:
    """ZDT1-6 and ZDT1-mixed's shapes (6 of 6 and 4 of 6 continuous) get the GP; a space under half
    continuous, a conditional one, a budget past GP_UP_TO and constraints on one objective keep
    TPE, as does an install without PyTorch."""
    torch = frozenset({"optuna", "hyperopt", "nevergrad", "torch"})
    floats = {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(4)}
    zdt1_mixed = parse_space({**floats, "kind": {"type": "categorical", "choices": ["a", "b", "c", "d"]},
                              "layers": {"type": "int", "low": 1, "high": 8}})
    zdt1 = parse_space({**floats, "x4": floats["x0"], "x5": floats["x0"]})
    for space in (zdt1, zdt1_mixed):
        got = choose(space, 100, 8, torch, 2)
        assert (got.backend, got.algorithm) == ("optuna", "gp")
        assert (choose(space, GP_UP_TO, 8, torch, 2, 1).algorithm) == "gp"
        assert (choose(space, GP_UP_TO + 1, 8, torch, 2).algorithm) == "tpe"
        assert (choose(space, 100, 8, torch - {"torch"}, 2).algorithm) == "tpe"
        assert (choose(space, 100, 8, torch, 1, 1).algorithm) == "tpe", "measured with two objectives only"
    assert "4 of 6 parameters continuous" in choose(zdt1_mixed, 100, 8, torch, 2).reason
    mostly_discrete = parse_space({"x": floats["x0"], "n": {"type": "int", "low": 0, "high": 3},
                                   "kind": {"type": "categorical", "choices": ["a", "b"]}})
    conditional = parse_space({**floats, "opt": {"type": "categorical", "choices": ["sgd", "adam"]},
                               "momentum": {"type": "float", "low": 0.0, "high": 1.0, "when": {"opt": "sgd"}}})
    for space in (mostly_discrete, conditional):
        assert choose(space, 100, 8, torch, 2).algorithm == "tpe"


# ---------------------------------------------------------------------- the lifecycle core


def finished(core: TaskLifecycle, point_id: int, number: int, values: dict[str, Any]) -> list[Any]:
    core.apply(Suggested((Suggestion(number, {"x": 0.5, "k": "a"}),), 4))
    core.apply(PointsCreated((point_id,), 0.0))
    core.apply(Received((Event("started", 7, point_id, 1, "p", time=1.0),), 1.0))
    core.apply(AttemptsCreated({(point_id, 1): point_id * 10}))
    first, rest = values["acc"], {k: v for k, v in values.items() if k != "acc"}
    return core.apply(Received((Event("finished", 7, point_id, 1, "p", data={"value": first, "metrics": rest}),),
                               2.0))


def test_the_core_keeps_every_value_judges_constraints_and_never_makes_an_infeasible_point_best() -> None:
    spec = task()
    core = TaskLifecycle(7, "mo", spec, "q", schedulers.create(spec))
    ok = finished(core, 1, 0, {"acc": 0.5, "lat": 2.0, "mem": 8.0})
    update = next(e for e in ok if isinstance(e, PointUpdate))
    assert (update.state, update.feasible, update.metric_values) == ("finished", True,
                                                                     {"acc": 0.5, "lat": 2.0, "mem": 8.0})
    assert Tell(0, 0.5, (0.5, 2.0), (8.0 - 16.0, 0.1 - 0.5)) in ok
    # better on the first objective, but over the memory bound
    bad = finished(core, 2, 1, {"acc": 0.9, "lat": 1.0, "mem": 20.0})
    update = next(e for e in bad if isinstance(e, PointUpdate))
    assert update.state == "finished" and update.feasible is False
    assert update.message == "infeasible: mem 20 > max 16"
    assert core.best_value == 0.5 and core.best_number == 0 and core.finished == 2
    assert Tell(1, 0.9, (0.9, 1.0), (4.0, 0.1 - 0.9)) in bad


def test_a_result_without_an_objective_or_constraint_metric_fails_its_point() -> None:
    spec = task()
    core = TaskLifecycle(7, "mo", spec, "q", schedulers.create(spec))
    effects = finished(core, 1, 0, {"acc": 0.5, "mem": 8.0})
    update = next(e for e in effects if isinstance(e, PointUpdate))
    assert (update.state, update.message) == ("failed", "objective metric 'lat' is missing")
    assert Tell(0, None) in effects
    effects = finished(core, 2, 1, {"acc": 0.5, "lat": 1.0, "mem": "lots"})
    update = next(e for e in effects if isinstance(e, PointUpdate))
    assert update.message == "constraint metric 'mem' is 'lots', not a finite number"


# ---------------------------------------------------------------------- restore and report


def test_a_restarted_steering_restores_values_and_feasibility(tmp_path: Path) -> None:
    from gridhpo.bookkeeping import Repository
    from gridhpo.bookkeeping.changes import Changes
    from gridhpo.steering.state import load_task

    repo = Repository(f"sqlite:///{tmp_path / 'b.db'}")
    spec = task()
    task_id = repo.create_task("mo", spec.to_dict())
    ids = repo.add_points(task_id, [(0, {"x": 0.1, "k": "a"}), (1, {"x": 0.2, "k": "b"}), (2, {"x": 0.3, "k": "a"})])
    ch = Changes()
    rows = [(ids[0], 0.4, {"acc": 0.4, "lat": 3.0, "mem": 1.0}, True),
            (ids[1], 0.9, {"acc": 0.9, "lat": 1.0, "mem": 30.0}, False)]
    for pid, value, recorded, ok in rows:
        ch.add(PointUpdate(pid, "finished", 1, 0.0, value, None, 1.0, recorded, ok))
    repo.apply(ch)
    state = load_task(repo, repo.task(task_id))
    trials = state.optimiser.trials
    assert trials[0].values == (-0.4, 3.0) and trials[0].violations == (1.0 - 16.0, 0.1 - 0.4)
    assert trials[1].values == (-0.9, 1.0) and trials[1].violations == (14.0, 0.1 - 0.9)
    assert trials[2].state == "pending"
    assert state.core.best_number == 0 and state.finished == 2  # the infeasible point is finished, not best
    state.driver.close()


def test_the_report_draws_the_front_and_its_hypervolume(tmp_path: Path) -> None:
    from gridhpo.bookkeeping import Repository
    from gridhpo.bookkeeping.changes import Changes
    from gridhpo.plots import data as D
    from gridhpo.plots import figures as F
    from gridhpo.plots import pareto

    rng = random.Random(3)
    for objectives in (2, 3):
        repo = Repository(f"sqlite:///{tmp_path / f'r{objectives}.db'}")
        goals = [{"metric": f"m{i}", "mode": "min" if i else "max"} for i in range(objectives)]
        spec = task(objective=goals, constraints=[{"metric": "mem", "max": 16}])
        task_id = repo.create_task(f"r{objectives}", spec.to_dict())
        ids = repo.add_points(task_id, [(n, {"x": n / 40, "k": "a"}) for n in range(40)])
        ch = Changes()
        expected = []
        for n, pid in enumerate(ids):
            recorded = {f"m{i}": rng.random() for i in range(objectives)} | {"mem": rng.uniform(0, 20)}
            ok = recorded["mem"] <= 16
            ch.add(PointUpdate(pid, "finished", 1, 0.0, recorded["m0"], None, float(n), recorded, ok))
            if ok:
                expected.append((n, tuple(-recorded[f"m{i}"] if i == 0 else recorded[f"m{i}"]
                                          for i in range(objectives))))
        repo.apply(ch)
        d = D.load(repo, task_id)
        f = pareto.front_data(d)
        assert f["front"] == [expected[i][0] for i in front([v for _, v in expected])]
        figs = pareto.figures(d)
        assert [fig["layout"]["meta"]["kind"] for fig in figs] == [
            "pareto-scatter" if objectives == 2 else "pareto-parallel", "pareto-hypervolume"]
        assert figs[0]["layout"]["meta"]["front"] == len(f["front"])
        hv = f["hypervolume"]["values"]
        assert hv == sorted(hv) and hv[-1] > 0  # the front only grows
        if objectives == 2:
            infeasible = next(t for t in figs[0]["data"] if t["name"].startswith("infeasible"))
            assert len(infeasible["x"]) == 40 - len(expected)
        # the history shows infeasible points apart, and its best so far never takes one
        h = D.history(d)
        hist = F.history_figure(h, d.metric)
        crosses = next(t for t in hist["data"] if t["name"].startswith("infeasible"))
        assert crosses["x"] == [n for n in range(40) if n not in {e[0] for e in expected}]
        assert h["best"][-1] == max(-v[0] for _, v in expected)
        assert D.summary(d)["best"]["number"] in {e[0] for e in expected}
