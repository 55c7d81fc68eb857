"""The whole loop with real pilot processes: on the embedded defaults and on PostgreSQL + RabbitMQ."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from gridhpo.bookkeeping import Repository
from gridhpo.steering.reports import results
from gridhpo.steering.runner import run_task, submit
from gridhpo.steering.taskfile import parse_task

EVALS = Path(__file__).parent / "evals"


def task(tmp_path: Path, space: dict[str, Any], **budget: Any) -> Any:
    shutil.copy(EVALS / "behave.py", tmp_path / "behave.py")
    return parse_task({
        "name": "loop",
        "search_space": space,
        "optimiser": {"backend": "random", "seed": 11},
        "budget": {"max_points": 12, "parallel": 3, **budget},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 1, "lost_after": 10},
    }, base_dir=tmp_path)


def test_a_task_runs_to_completion(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    spec = task(tmp_path, {"x": {"type": "float", "low": -2, "high": 2}})
    tid, _ = submit(repo, spec)
    seen: list[dict[str, Any]] = []
    result = run_task(repo, broker, tid, pilots=2, on_progress=seen.append)
    assert result.state == "finished"
    rows = results(repo, repo.task(tid))
    assert len(rows) == 12 and all(r["state"] == "finished" for r in rows)
    for r in rows:
        assert abs(r["value"] - r["params"]["x"] ** 2) < 1e-12
        assert [a["state"] for a in r["attempts"]] == ["finished"]
    metrics = repo.metrics(tid)
    assert len(metrics) == 12 and {m.step for m in metrics} == {1.0}
    assert {p.site for p in repo.pilots(tid)} == {"local"} and len(repo.pilots(tid)) == 2
    assert seen and seen[-1]["finished"] == 12


def test_misbehaving_evaluations_fail_with_their_reason_and_pilots_go_on(servers: tuple[str, str],
                                                                        tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    modes = ["ok", "exit", "nooutput", "badjson", "status", "nan"]
    spec = task(tmp_path, {"x": {"type": "float", "low": 0, "high": 1},
                           "mode": {"type": "categorical", "choices": modes}},
                max_points=24, max_failures=100)
    tid, _ = submit(repo, spec)
    result = run_task(repo, broker, tid, pilots=2)
    assert result.state == "finished"
    rows = results(repo, repo.task(tid))
    assert len(rows) == 24
    expected = {
        "ok": None, "exit": "exited with code 3", "nooutput": "wrote no output.json",
        "badjson": "output.json is not valid JSON", "status": "status 2: diverged",
        "nan": "objective metric 'loss' is nan",
    }
    for r in rows:
        mode = r["params"]["mode"]
        if mode == "ok":
            assert r["state"] == "finished"
            continue
        assert r["state"] == "failed", r
        assert expected[mode] in r["message"]
    exits = [r for r in rows if r["params"]["mode"] == "exit"]
    assert exits, "the seed gives at least one crashing point"
    stderr = [a for a in repo.attempts(task_id=tid) if a.stderr_tail]
    assert any("something broke in training" in (a.stderr_tail or "") for a in stderr)


def test_results_json_has_what_users_script_against(home: Path, tmp_path: Path) -> None:
    repo = Repository()
    tid, _ = submit(repo, task(tmp_path, {"x": {"type": "float", "low": -1, "high": 1}}, max_points=3))
    run_task(repo, f"filesystem://{home / 'queue'}", tid, pilots=1)
    from click.testing import CliRunner

    from gridhpo.cli import main

    out = CliRunner().invoke(main, ["results", "loop", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    # metric_values and feasible: null unless the task has several objectives or constraints
    assert [sorted(d) for d in data] == [sorted(["id", "number", "params", "state", "value", "message",
                                                 "reached", "attempts", "metric_values", "feasible"])] * 3
    assert all(d["metric_values"] is None and d["feasible"] is None for d in data)
    assert all(d["state"] == "finished" and len(d["attempts"]) == 1 for d in data)
