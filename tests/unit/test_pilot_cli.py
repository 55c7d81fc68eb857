"""``gridhpo pilot --task`` takes an id, or a name where the bookkeeping is reachable (issue 12, item 13)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gridhpo import config
from gridhpo.bookkeeping import Repository
from gridhpo.steering.reports import results
from gridhpo.steering.runner import submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import steering

SPEC = {"name": "named-task", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
        "evaluation": {"command": "true"}}


def pilot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridhpo.cli", "pilot", *args, "--idle-timeout", "0.5"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_a_pilot_finds_its_task_by_name_in_the_bookkeeping(home: Path) -> None:
    repo = Repository()
    submit(repo, parse_task({**SPEC, "name": "other"}))
    spec = {**SPEC, "budget": {"max_points": 1},
            "evaluation": {"command": """echo '{"status": 0, "loss": 0.25}' > output.json"""}}
    tid, _ = submit(repo, parse_task(spec))
    # a steering answers the pilot's hello at once (without one it waits 10 s) and hands it the point
    with steering(repo, config.broker_url(), tid):
        r = pilot("--task", "named-task", "--token", repo.task(tid).token)
    assert r.returncode == 0, r.stderr
    assert f"serving task {tid} " in r.stderr
    (row,) = results(repo, repo.task(tid))
    assert row["state"] == "finished" and row["value"] == 0.25, row


def test_an_unknown_name_is_a_one_line_error(home: Path) -> None:
    Repository()
    r = pilot("--task", "nope")
    assert r.returncode == 2
    assert "no task 'nope'" in r.stderr and "give a task id or the name of a task" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_name_without_a_reachable_bookkeeping_says_to_give_the_id(home: Path) -> None:
    r = pilot("--task", "named-task")
    assert r.returncode == 2
    assert "no bookkeeping is reachable here" in r.stderr and "give the task id" in r.stderr
    assert not (home / "gridhpo.db").exists(), "looking it up created no database"
