"""End to end: a small task with each backend, run to completion by real pilot processes on
the embedded defaults (SQLite bookkeeping, folder queue), with an in-process objective; Optuna's
TPE also on PostgreSQL + RabbitMQ."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridhpo import config
from gridhpo.bookkeeping import Repository
from gridhpo.steering.runner import run_task, submit
from gridhpo.steering.taskfile import load_task

OBJECTIVE = '''
def objective(x, n, act, **rest):
    if act == "bad":
        raise RuntimeError("this activation always fails")
    return (x - 0.3) ** 2 + 0.1 * n + (0.0 if act is True else 0.05)
'''

CASES: list[tuple[str, dict[str, Any]]] = [
    ("random", {}), ("grid", {"options": {"resolution": 2}}), ("hyperopt", {"algorithm": "tpe"}),
    ("skopt", {"algorithm": "rf", "options": {"n_initial_points": 4}}), ("nevergrad", {}),
]


def run_case(db: str, broker: str, tmp_path: Path, backend: str, extra: dict[str, Any]) -> None:
    """Run the task with ``backend`` to completion through 2 pilot processes; check every point."""
    (tmp_path / f"obj_{backend}.py").write_text(OBJECTIVE)
    import yaml

    task = {
        "name": f"opt-{backend}",
        "search_space": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "n": {"type": "int", "low": 0, "high": 3},
            "act": {"type": "categorical", "choices": [True, 1, "bad"]},
            "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "when": {"act": 1}},
        },
        "objective": {"metric": "loss", "mode": "min"},
        "optimiser": {"backend": backend, "seed": 3, **extra},
        "budget": {"max_points": 12, "parallel": 3, "max_failures": 12},
        "evaluation": {"python": f"obj_{backend}:objective"},
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task))
    spec = load_task(path)
    repo = Repository(db)
    task_id, _ = submit(repo, spec)
    result = run_task(repo, broker, task_id, pilots=2)
    assert result.state == "finished"
    points = repo.points(task_id)
    assert len(points) == 12
    assert len({repr(sorted((k, type(v).__name__, v) for k, v in p.params.items())) for p in points}) == 12
    for p in points:
        spec.search_space.validate_point(p.params)  # inactive parameters never sent
        assert p.state == ("failed" if p.params["act"] == "bad" else "finished")
    assert result.progress["best_value"] == min(p.value for p in points if p.value is not None)


@pytest.mark.parametrize(("backend", "extra"), CASES, ids=[c[0] for c in CASES])
def test_task_runs_to_completion(home: Path, tmp_path: Path, backend: str, extra: dict[str, Any]) -> None:
    run_case(config.db_url(), config.broker_url(), tmp_path, backend, extra)


def test_optuna_tpe_task_runs_to_completion(servers: tuple[str, str], tmp_path: Path) -> None:
    """Optuna's TPE (multivariate, constant liar) through real pilots, on the embedded defaults
    and on PostgreSQL + RabbitMQ."""
    db, broker = servers
    run_case(db, broker, tmp_path, "optuna", {"algorithm": "tpe", "options": {"n_startup_trials": 4}})
