"""Pilots whose clocks are wrong: one a minute behind keeps its live point, one an hour ahead
that dies has its point declared lost after lost_after. Real pilot processes whose whole clock
(``time.time``) is skewed, on the embedded defaults and on PostgreSQL + RabbitMQ."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.steering.runner import submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import steering, until

EVALS = Path(__file__).parent / "evals"
pytestmark = [pytest.mark.integration, pytest.mark.heavy]

# `gridhpo pilot` in a process whose clock is off by argv[1] seconds
SKEWED = ("import sys, time; skew = float(sys.argv.pop(1)); real = time.time; "
          "time.time = lambda: real() + skew; from gridhpo.cli.main import main; main()")


def skewed_pilot(skew: float, tid: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SKEWED, str(skew), "pilot", "--task", str(tid),
                             "--pilot-id", f"skew{skew:+g}"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_liveness_is_judged_by_the_steerings_clock(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    shutil.copy(EVALS / "behave.py", tmp_path / "behave.py")
    tid, _ = submit(repo, parse_task({
        "name": "clocks",
        "search_space": {"x": {"type": "float", "low": -1, "high": 1}, "sleep": {"type": "fixed", "value": 8}},
        "optimiser": {"backend": "random", "seed": 2},
        "budget": {"max_points": 2, "parallel": 2, "max_attempts": 3},
        # each point runs longer than lost_after: only heartbeats keep it
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 0.5, "lost_after": 3},
    }, base_dir=tmp_path))
    env = dict(os.environ, GRIDHPO_DB=db, GRIDHPO_BROKER=broker, GRIDHPO_TOKEN=repo.task(tid).token or "")
    log = tmp_path / "pilots.log"
    behind = skewed_pilot(-60, tid, env, log)
    ahead = skewed_pilot(3600, tid, env, log)
    try:
        with steering(repo, broker, tid):
            until(lambda: {a.pilot_id for a in repo.attempts(task_id=tid)} == {"skew-60", "skew+3600"}, 60,
                  "both pilots to run a point")
            os.killpg(ahead.pid, signal.SIGKILL)  # the pilot an hour ahead dies with its evaluation
            ahead.wait()
            until(lambda: repo.task(tid).state != "active", 120, "the task to end")
        assert behind.wait(timeout=60) == 0  # it also ran the lost point again, then the task ended
    finally:
        for p in (behind, ahead):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert repo.task(tid).state == "finished", log.read_text()[-3000:]
    attempts: dict[int, list[tuple[str | None, str]]] = {}
    for a in repo.attempts(task_id=tid):
        attempts.setdefault(a.point_id, []).append((a.pilot_id, a.state))
    assert sorted(attempts.values()) == [
        [("skew+3600", "lost"), ("skew-60", "finished")],  # the dead pilot's point, lost then run again
        [("skew-60", "finished")],  # the live point of the pilot a minute behind, never lost
    ]
