"""Multi-objective search end to end: a task with two objectives and a constraint, run to
completion by real pilot processes on the embedded defaults (SQLite, folder queue) and on
PostgreSQL + RabbitMQ; every recorded value, the feasibility of every point, the Pareto front
that ``gridhpo results --pareto`` prints and the front size ``gridhpo status`` shows are
checked against a brute-force computation from the points' parameters."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gridhpo.bookkeeping import Repository
from gridhpo.cli.main import main
from gridhpo.steering.runner import run_task, submit
from gridhpo.steering.taskfile import load_task

OBJECTIVE = '''
def objective(x, n, kind, **rest):
    if kind == "bad":
        raise RuntimeError("this kind always fails")
    accuracy = 1.0 - (x - 0.7) ** 2 - 0.02 * n
    latency = 1.0 + 3.0 * x + n
    return {"accuracy": accuracy, "latency": latency, "memory_gb": 4.0 * n + (2.0 if kind == "wide" else 0.0)}
'''
MEMORY_MAX = 9.0


def values_of(params: dict[str, Any]) -> tuple[float, float, float]:
    """The objective's values, computed here again from a point's parameters."""
    x, n, kind = params["x"], params["n"], params["kind"]
    return 1.0 - (x - 0.7) ** 2 - 0.02 * n, 1.0 + 3.0 * x + n, 4.0 * n + (2.0 if kind == "wide" else 0.0)


def brute_force_front(points: list[tuple[int, float, float]]) -> set[int]:
    """Numbers of the points (number, accuracy: max, latency: min) no other point dominates."""
    def dominated(a: tuple[int, float, float]) -> bool:
        return any(b[1] >= a[1] and b[2] <= a[2] and (b[1] > a[1] or b[2] < a[2]) for b in points)

    return {p[0] for p in points if not dominated(p)}


def task_file(tmp_path: Path, backend: dict[str, Any], max_points: int = 16) -> Path:
    (tmp_path / "obj_multi.py").write_text(OBJECTIVE)
    task = {
        "name": "multi",
        "search_space": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "n": {"type": "int", "low": 0, "high": 3},
            "kind": {"type": "categorical", "choices": ["narrow", "wide", "bad"]},
        },
        "objective": [{"metric": "accuracy", "mode": "max"}, {"metric": "latency", "mode": "min"}],
        "constraints": [{"metric": "memory_gb", "max": MEMORY_MAX}],
        "optimiser": {"seed": 5, **backend},
        "budget": {"max_points": max_points, "parallel": 3, "max_failures": max_points},
        "evaluation": {"python": "obj_multi:objective"},
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


def run_and_check(db: str, broker: str, tmp_path: Path, backend: dict[str, Any]) -> None:
    spec = load_task(task_file(tmp_path, backend))
    repo = Repository(db)
    task_id, _ = submit(repo, spec)
    result = run_task(repo, broker, task_id, pilots=2)
    assert result.state == "finished"
    points = repo.points(task_id)
    assert len(points) == 16
    feasible: list[tuple[int, float, float]] = []
    for p in points:
        if p.params["kind"] == "bad":
            assert p.state == "failed"
            continue
        assert p.state == "finished"
        accuracy, latency, memory = values_of(p.params)
        # every objective's and the constraint's value is kept
        assert p.metric_values == pytest.approx({"accuracy": accuracy, "latency": latency, "memory_gb": memory})
        assert p.value == pytest.approx(accuracy)
        # the constraint is honoured: feasibility as the bound says, and an infeasible point says why
        assert p.feasible is (memory <= MEMORY_MAX)
        if p.feasible:
            feasible.append((p.number, accuracy, latency))
        else:
            assert p.message.startswith("infeasible: memory_gb")
    assert feasible, "no feasible point: the test's space is too tight"
    infeasible = {p.number for p in points if p.feasible is False}
    # never reported as best
    best = result.progress["best_number"]
    assert best not in infeasible
    assert result.progress["best_value"] == pytest.approx(max(a for _, a, _ in feasible))

    runner = CliRunner()
    out = runner.invoke(main, ["results", str(task_id), "--pareto", "--format", "json", "--db", db])
    assert out.exit_code == 0, out.output
    front = json.loads(out.output)
    expected = brute_force_front(feasible)
    assert {r["number"] for r in front} == expected
    assert not infeasible & {r["number"] for r in front}
    for r in front:
        assert set(r["values"]) == {"accuracy", "latency", "memory_gb"}
        assert r["values"]["memory_gb"] <= MEMORY_MAX
    table = runner.invoke(main, ["results", str(task_id), "--pareto", "--db", db])
    assert "accuracy (max)" in table.output and "latency (min)" in table.output
    every = runner.invoke(main, ["results", str(task_id), "--db", db]).output
    assert ("(infeasible)" in every) == bool(infeasible)
    status = runner.invoke(main, ["status", str(task_id), "--db", db])
    assert status.exit_code == 0, status.output
    assert f"front {len(expected)}" in status.output
    assert all(math.isfinite(v) for r in front for v in r["values"].values())


@pytest.mark.parametrize("algorithm", ["tpe", "gp"])
def test_optuna_two_objectives_and_a_constraint(servers: tuple[str, str], tmp_path: Path, algorithm: str) -> None:
    """Optuna's multi-objective TPE and GP with a constraint, on the embedded defaults and on
    PostgreSQL + RabbitMQ."""
    if algorithm == "gp":
        pytest.importorskip("torch", reason="optuna's gp needs PyTorch (pip install 'gridhpo[gp]')")
    db, broker = servers
    run_and_check(db, broker, tmp_path, {"backend": "optuna", "algorithm": algorithm,
                                         "options": {"n_startup_trials": 4}})


@pytest.mark.parametrize("backend", [{"backend": "optuna", "algorithm": "nsga2", "options": {"population_size": 4}},
                                     {"backend": "nevergrad"}, {}], ids=["nsga2", "nevergrad", "auto"])
def test_other_multi_objective_backends(home: Path, tmp_path: Path, backend: dict[str, Any]) -> None:
    """NSGA-II, nevergrad and auto (the default: no backend named) on the embedded defaults."""
    run_and_check(f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}", tmp_path, backend)


@pytest.mark.parametrize("backend", ["hyperopt", "random", "skopt", "grid"])
def test_a_single_objective_backend_is_refused_at_submit(servers: tuple[str, str], tmp_path: Path,
                                                         backend: str) -> None:
    db, _ = servers
    path = task_file(tmp_path, {"backend": backend})
    out = CliRunner().invoke(main, ["submit", str(path), "--db", db])
    assert out.exit_code != 0
    line = out.output.strip()
    assert "\n" not in line
    assert f"objective: backend {backend} takes a single objective" in line
    assert "optuna tpe, optuna gp, optuna nsga2" in line and "nevergrad" in line
    assert Repository(db).tasks() == []  # nothing recorded


@pytest.mark.integration
def test_the_report_draws_the_front_in_a_browser(home: Path, tmp_path: Path) -> None:
    """The HTML report of a finished 2-objective task, opened in a real Chromium: the Pareto
    section's scatter holds the brute-force front, and its hypervolume curve is drawn."""
    from gridhpo.plots.report import write_report
    from tests.browser import Browser

    db = f"sqlite:///{home / 'gridhpo.db'}"
    spec = load_task(task_file(tmp_path, {"backend": "optuna", "algorithm": "tpe"}))
    repo = Repository(db)
    task_id, _ = submit(repo, spec)
    assert run_task(repo, f"filesystem://{home / 'queue'}", task_id, pilots=2).state == "finished"
    feasible = [(p.number, *values_of(p.params)[:2]) for p in repo.points(task_id) if p.feasible]
    out = tmp_path / "report.html"
    write_report(repo, [task_id], out)
    b = Browser(tmp_path / "chromium-profile")
    try:
        b.goto(out.resolve().as_uri())
        b.wait_for("document.querySelectorAll('#section-pareto .fig .main-svg').length >= 2")
        front = b.js("Array.from(document.querySelectorAll('#section-pareto .fig')).map(d => d.data)"
                     ".flatMap(data => data.filter(t => (t.name || '').startsWith('Pareto front')))"
                     ".flatMap(t => t.customdata)")
        assert sorted(front) == sorted(brute_force_front(feasible))
        kinds = b.js("Array.from(document.querySelectorAll('#section-pareto .fig')).map(d => d.dataset.kind)")
        assert kinds == ["pareto-scatter", "pareto-hypervolume"]
        b.screenshot(tmp_path / "report.png")
    finally:
        b.close()


def test_one_objective_under_a_constraint(home: Path, tmp_path: Path) -> None:
    """Constraints with a single objective: infeasible points are recorded and shown as such,
    never the best; the front of one objective is its best feasible point."""
    db = f"sqlite:///{home / 'gridhpo.db'}"
    path = task_file(tmp_path, {"backend": "optuna", "algorithm": "tpe", "options": {"n_startup_trials": 4}})
    raw = yaml.safe_load(path.read_text())
    raw["objective"] = {"metric": "accuracy", "mode": "max"}
    path.write_text(yaml.safe_dump(raw))
    spec = load_task(path)
    repo = Repository(db)
    task_id, _ = submit(repo, spec)
    result = run_task(repo, f"filesystem://{home / 'queue'}", task_id, pilots=2)
    assert result.state == "finished"
    finished = [p for p in repo.points(task_id) if p.state == "finished"]
    for p in finished:
        assert p.feasible is (values_of(p.params)[2] <= MEMORY_MAX)
    feasible = [p for p in finished if p.feasible]
    best = max(feasible, key=lambda p: p.value)
    assert (result.progress["best_number"], result.progress["best_value"]) == (best.number, best.value)
    runner = CliRunner()
    front = json.loads(runner.invoke(main, ["results", str(task_id), "--pareto", "--format", "json",
                                            "--db", db]).output)
    assert [r["number"] for r in front] == [p.number for p in feasible if p.value == best.value]
    table = runner.invoke(main, ["results", str(task_id), "--db", db]).output
    assert table.count("finished (infeasible)") == len(finished) - len(feasible)
