"""The steering killed with SIGKILL in the middle of a task and started again: no point lost,
none counted twice, on the embedded defaults and on PostgreSQL + RabbitMQ."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from gridhpo.bookkeeping import Repository
from tests.helpers import until

EVALS = Path(__file__).parent / "evals"


def gridhpo(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gridhpo.cli", *args], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_steering_killed_and_restarted_loses_and_doubles_nothing(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    shutil.copy(EVALS / "behave.py", tmp_path / "behave.py")
    n = 20  # 8 or more finish before the kill, the rest after the restart
    # each evaluation outlasts its heartbeat (0.8 s > 0.5 s): the events sent while the steering
    # is down then hold heartbeats followed by their points' results, which the restarted
    # steering applies in one batch (a heartbeat written last once left the attempt running)
    (tmp_path / "task.yaml").write_text(yaml.safe_dump({
        "name": "restart",
        "search_space": {"x": {"type": "float", "low": -3, "high": 3}, "sleep": {"type": "fixed", "value": 0.8}},
        "optimiser": {"backend": "random", "seed": 5},
        "budget": {"max_points": n, "parallel": 4, "max_attempts": 5},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 0.5, "lost_after": 3},
    }))
    env = dict(os.environ, GRIDHPO_DB=db, GRIDHPO_BROKER=broker, GRIDHPO_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-m", "gridhpo.cli", "submit", str(tmp_path / "task.yaml")],
                         env=env, capture_output=True, text=True, check=True)
    tid = int(out.stdout.strip())
    repo = Repository(db)
    log = tmp_path / "log.txt"
    steer = gridhpo("steer", env=env, log=log)
    env["GRIDHPO_TOKEN"] = repo.task(tid).token or ""  # what `gridhpo token TASK` prints
    pilots = [gridhpo("pilot", "--task", str(tid), "--pilot-id", f"p{i}", env=env, log=log) for i in range(2)]
    try:
        until(lambda: repo.counts(tid).get("finished", 0) >= 8, 60, "8 finished points")
        steer.send_signal(signal.SIGKILL)
        steer.wait()
        killed_at = repo.counts(tid).get("finished", 0)
        assert killed_at < n, "the task ended before the steering was killed"
        time.sleep(1.0)
        steer = gridhpo("steer", env=env, log=log)
        until(lambda: repo.task(tid).state != "active", 120, "the task to end")
    finally:
        for p in [steer, *pilots]:
            p.send_signal(signal.SIGTERM)
        for p in [steer, *pilots]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    assert repo.task(tid).state == "finished", log.read_text()[-3000:]
    points = repo.points(tid)
    assert sorted(p.number for p in points) == list(range(n))
    assert all(p.state == "finished" for p in points)
    for p in points:
        assert abs(p.value - p.params["x"] ** 2) < 1e-12
    attempts = repo.attempts(task_id=tid)
    finished_attempts = Counter(a.point_id for a in attempts if a.state == "finished")
    assert finished_attempts == Counter({p.id: 1 for p in points}), [
        (a.point_id, a.number, a.state) for a in attempts if finished_attempts[a.point_id] != 1]
