"""Early stopping through real pilots and checkpoints: points stopped at a rung, paused,
revived from their checkpoint and promoted to the end (issue 6)."""
from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from gridhpo.bookkeeping import Repository
from gridhpo.steering.runner import run_task, submit
from gridhpo.steering.taskfile import parse_task

EVALS = Path(__file__).parent / "evals"


def spec(tmp_path: Path, **early: Any) -> Any:
    shutil.copy(EVALS / "epochs.py", tmp_path / "epochs.py")
    return parse_task({
        "name": "asha",
        # grid order: each point is worse than the ones before, so ASHA's decisions are known
        "search_space": {"x": {"type": "float", "low": 0.1, "high": 0.9, "step": 0.1}},
        "optimiser": {"backend": "grid"},
        "budget": {"max_points": 9, "parallel": 2},
        "early_stopping": {"scheduler": "asha", "resource": "epoch", "min_resource": 1, "max_resource": 9,
                           "reduction_factor": 3, **early},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/epochs.py"', "heartbeat": 1, "grace": 5,
                       "checkpoint": {"interval": 1}},
    }, base_dir=tmp_path)


def steps_by_attempt(repo: Repository, tid: int) -> dict[int, dict[int, list[float]]]:
    attempts = {a.id: (a.point_id, a.number) for a in repo.attempts(task_id=tid)}
    out: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for m in repo.metrics(tid):
        pid, n = attempts[m.attempt_id]
        out[pid][n].append(m.values["epoch"])
    return out


def test_asha_stops_bad_points_at_their_rung_and_lets_good_ones_finish(home: Path, tmp_path: Path) -> None:
    repo = Repository()
    tid, _ = submit(repo, spec(tmp_path))
    result = run_task(repo, f"filesystem://{home / 'queue'}", tid, pilots=2, pilot_args=["--store",
                                                                                        f"file://{home}/store"])
    assert result.state == "finished"
    points = {p.id: p for p in repo.points(tid)}
    steps = steps_by_attempt(repo, tid)
    stopped = [p for p in points.values() if p.state == "stopped"]
    finished = [p for p in points.values() if p.state == "finished"]
    assert stopped and finished
    assert min(p.params["x"] for p in finished) == 0.1  # the best point is never stopped
    for p in finished:
        assert max(steps[p.id][1]) == 9.0
    for p in stopped:
        last = max(max(s) for s in steps[p.id].values())
        assert last < 9.0
        # the decision is taken at rung 1 or 3 and reaches the pilot within seconds
        assert last <= 3 + 8, last
        assert "stopped by the asha scheduler" in (p.message or "")
        assert [a.state for a in repo.attempts(point_ids=[p.id])] == ["stopped"]


def test_paused_points_are_revived_from_their_checkpoint(home: Path, tmp_path: Path) -> None:
    repo = Repository()
    tid, _ = submit(repo, spec(tmp_path, revive=True))
    result = run_task(repo, f"filesystem://{home / 'queue'}", tid, pilots=2, pilot_args=["--store",
                                                                                        f"file://{home}/store"])
    assert result.state == "finished"
    steps = steps_by_attempt(repo, tid)
    revived = []
    for p in repo.points(tid):
        attempts = repo.attempts(point_ids=[p.id])
        if len(attempts) > 1:
            assert attempts[0].state == "paused"
            revived.append(p)
            first, second = steps[p.id][1], steps[p.id][2]
            # the revived attempt continues where the paused one stopped, not from scratch
            assert min(second) == max(first) + 1
    assert revived, "no paused point was revived"
    from gridhpo.steering.reports import format_results, results

    rows = {r["id"]: r for r in results(repo, repo.task(tid))}
    table = format_results(list(rows.values()), "table")
    for p in revived:  # `gridhpo results` shows the pause, the resume and the rung reached
        assert rows[p.id]["attempts"][0]["state"] == "paused"
        assert rows[p.id]["reached"] == max(max(s) for s in steps[p.id].values())
    assert " 1:paused" in table
    states = {p.state for p in repo.points(tid)}
    assert states <= {"finished", "stopped"}
