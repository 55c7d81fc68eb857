"""The examples of examples/ run as shipped (budgets cut down to keep the suite fast)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gridhpo.bookkeeping import Repository
from gridhpo.steering.reports import best_point
from gridhpo.steering.runner import run_task, submit
from gridhpo.steering.taskfile import TaskSpec, parse_task

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(path: Path, max_points: int) -> TaskSpec:
    raw = yaml.safe_load(path.read_text())
    raw["budget"]["max_points"] = max_points
    if "epochs" in raw["search_space"]:
        raw["search_space"]["epochs"] = {"type": "fixed", "value": 3}
    return parse_task(raw, str(path), base_dir=path.parent)


@pytest.mark.parametrize(("example", "points"), [("branin/task-inprocess.yaml", 60), ("digits/task.yaml", 2)])
def test_example_runs_to_a_sensible_best(home: Path, example: str, points: int) -> None:
    repo = Repository()
    tid, _ = submit(repo, load(EXAMPLES / example, max_points=points))
    result = run_task(repo, f"filesystem://{home / 'queue'}", tid, pilots=2)
    assert result.state == "finished" and result.progress["finished"] == points
    best = best_point(repo, repo.task(tid))
    assert best is not None
    if "branin" in example:
        assert 0.397887 - 1e-9 <= best[1] < 5.0  # the global minimum is 0.397887
    else:
        assert 0.0 < best[1] < 2.3  # log-loss of a 10-class model that learnt something
        metrics = repo.metrics(tid)
        assert sorted({m.step for m in metrics}) == [1.0, 2.0, 3.0]


def test_the_multi_objective_example_finds_a_feasible_front(home: Path) -> None:
    from gridhpo.steering.fronts import front_rows
    from gridhpo.steering.reports import results

    repo = Repository()
    spec = load(EXAMPLES / "multiobjective/task.yaml", max_points=24)
    assert spec.optimiser.backend == "optuna" and spec.optimiser.auto  # chosen by auto
    tid, _ = submit(repo, spec)
    result = run_task(repo, f"filesystem://{home / 'queue'}", tid, pilots=2)
    assert result.state == "finished" and result.progress["finished"] == 24
    front = front_rows(results(repo, repo.task(tid)), spec.goals)
    assert front and all(r["feasible"] and r["metric_values"]["memory_gb"] <= 16 for r in front)
