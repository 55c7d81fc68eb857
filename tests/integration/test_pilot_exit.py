"""Pilots without --idle-timeout exit soon after their task ends or is cancelled, also when they
start after the end and when the end happened while no steering ran: real pilot processes on
the embedded defaults and on PostgreSQL + RabbitMQ."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gridhpo.bookkeeping import Repository
from gridhpo.protocol import Broker, points_queue
from gridhpo.steering.service import Steering
from tests.helpers import steering, until

EVALS = Path(__file__).parent / "evals"
pytestmark = pytest.mark.integration


def setup(tmp_path: Path, servers: tuple[str, str], sleep: float, max_points: int,
          inline: bool = False) -> tuple[int, dict[str, str]]:
    """A submitted task (through the CLI) and the environment its pilots run in; ``inline``: an
    in-process objective, whose pilots take points in batches from a consumer."""
    db, broker = servers
    shutil.copy(EVALS / "behave.py", tmp_path / "behave.py")
    (tmp_path / "objective.py").write_text("def objective(x, sleep):\n    return x * x\n")
    (tmp_path / "task.yaml").write_text(yaml.safe_dump({
        "name": "ends",
        "search_space": {"x": {"type": "float", "low": -1, "high": 1}, "sleep": {"type": "fixed", "value": sleep}},
        "optimiser": {"backend": "random", "seed": 3},
        "budget": {"max_points": max_points, "parallel": 2},
        "evaluation": {"python": "objective:objective"} if inline else {
            "command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 0.5, "lost_after": 30},
    }))
    env = dict(os.environ, GRIDHPO_DB=db, GRIDHPO_BROKER=broker)
    tid = int(gridhpo_cli(env, "submit", str(tmp_path / "task.yaml")).stdout.strip())
    env["GRIDHPO_TOKEN"] = gridhpo_cli(env, "token", str(tid)).stdout.strip()
    return tid, env


def gridhpo_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridhpo.cli", *args], env=env, capture_output=True, text=True,
                          check=True, timeout=60)


def pilot(tid: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(tid)], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def exit_status(p: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> int:
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError(f"the pilot did not exit:\n{log.read_text()[-3000:]}") from None


@pytest.mark.parametrize("inline", [False, True], ids=["command", "in-process"])
def test_pilots_exit_when_their_task_finishes_also_one_started_after(servers: tuple[str, str], tmp_path: Path,
                                                                     inline: bool) -> None:
    tid, env = setup(tmp_path, servers, sleep=0, max_points=4 if not inline else 40, inline=inline)
    repo = Repository(servers[0])
    logs = [tmp_path / f"pilot{i}.log" for i in range(3)]
    pilots = [pilot(tid, env, logs[i]) for i in range(2)]
    with steering(repo, servers[1], tid):
        until(lambda: repo.task(tid).state != "active", 90, "the task to end")
    assert repo.task(tid).state == "finished"
    for p, log in zip(pilots, logs[:2], strict=True):
        assert exit_status(p, log) == 0
        assert f"task {tid} finished" in log.read_text()
    late = pilot(tid, env, logs[2])  # started after the end: the marker is still there
    assert exit_status(late, logs[2]) == 0
    assert f"task {tid} finished" in logs[2].read_text()


def test_pilots_exit_when_their_task_is_cancelled(servers: tuple[str, str], tmp_path: Path) -> None:
    tid, env = setup(tmp_path, servers, sleep=600, max_points=10)
    repo = Repository(servers[0])
    logs = [tmp_path / f"pilot{i}.log" for i in range(2)]
    pilots = [pilot(tid, env, log) for log in logs]
    with steering(repo, servers[1], tid):
        until(lambda: repo.counts(tid).get("running", 0) == 2, 60, "both pilots to run a point")
        gridhpo_cli(env, "cancel", str(tid))
        for p, log in zip(pilots, logs, strict=True):
            assert exit_status(p, log) == 0  # its evaluation stopped, then the marker found
            assert f"task {tid} cancelled" in log.read_text()
    assert {p.state for p in repo.points(tid)} == {"cancelled"}


@pytest.mark.heavy
def test_a_task_that_ended_while_no_steering_ran_still_ends_its_pilots(servers: tuple[str, str],
                                                                        tmp_path: Path) -> None:
    db, broker_url = servers
    tid, env = setup(tmp_path, servers, sleep=600, max_points=10)
    repo = Repository(db)
    token = repo.task(tid).token
    assert token
    with Broker(broker_url) as broker:
        Steering(repo, broker).step()  # points handed out, then the steering is gone
        assert broker.size(points_queue(tid, token)) == 2
        gridhpo_cli(env, "cancel", str(tid))
        Steering(repo, broker).step()  # the next steering finds the task ended with open points
        assert {p.state for p in repo.points(tid)} == {"cancelled"}
    log = tmp_path / "pilot.log"
    assert exit_status(pilot(tid, env, log), log) == 0  # no stale point taken: the marker is first
    text = log.read_text()
    assert f"task {tid} cancelled" in text and "0 finished, 0 failed" in text

    # the marker lost (a steering killed between ending the task and publishing it)
    with Broker(broker_url) as broker:
        broker.purge(points_queue(tid, token))
        Steering(repo, broker).step()
    log = tmp_path / "pilot2.log"
    assert exit_status(pilot(tid, env, log), log) == 0
    assert f"task {tid} cancelled" in log.read_text()


def pilot_as(tid: int, env: dict[str, str], log: Path, pilot_id: str, token: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in env.items() if k != "GRIDHPO_TOKEN"}
    if token is not None:
        env["GRIDHPO_TOKEN"] = token
    return subprocess.Popen([sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(tid), "--pilot-id", pilot_id],
                            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_a_pilot_with_a_wrong_missing_or_expired_token_says_so_and_exits_non_zero(servers: tuple[str, str],
                                                                                   tmp_path: Path) -> None:
    from gridhpo.evaluation.handshake import EXIT_REFUSED

    tid, env = setup(tmp_path, servers, sleep=600, max_points=10)
    repo = Repository(servers[0])
    token = env["GRIDHPO_TOKEN"]  # as `gridhpo token` prints it: TOKEN.KEY
    with steering(repo, servers[1], tid):
        for name, presented, why in [("wrong", "not-the-token", "wrong or replaced token"), ("none", None, "no token")]:
            log = tmp_path / f"{name}.log"
            assert exit_status(pilot_as(tid, env, log, name, presented), log) == EXIT_REFUSED
            assert f"token refused by the steering: {why}" in log.read_text()
        repo.set_token(tid, repo.task(tid).token, time.time() - 1)
        log = tmp_path / "expired.log"
        assert exit_status(pilot_as(tid, env, log, "expired", token), log) == EXIT_REFUSED
        assert "token refused by the steering: token expired" in log.read_text()
        gridhpo_cli(env, "cancel", str(tid))
    assert not repo.attempts(task_id=tid)  # none of them ran a point


def test_a_revoked_token_gets_no_more_points_and_its_pilots_exit(servers: tuple[str, str], tmp_path: Path) -> None:
    from gridhpo.evaluation.handshake import EXIT_REFUSED

    tid, env = setup(tmp_path, servers, sleep=600, max_points=10)  # lost_after 30 s: never reached here
    repo = Repository(servers[0])
    old = env["GRIDHPO_TOKEN"]
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b", "c")}
    with steering(repo, servers[1], tid):
        a = pilot_as(tid, env, logs["a"], "a", old)
        until(lambda: any(x.pilot_id == "a" for x in repo.attempts(task_id=tid)), 60, "pilot a to run a point")
        [running] = [x for x in repo.attempts(task_id=tid) if x.pilot_id == "a"]
        new = gridhpo_cli(env, "token", str(tid), "--revoke").stdout.strip()
        b = pilot_as(tid, env, logs["b"], "b", old)  # started right after the revoke
        # a learns it at its next heartbeat, stops its evaluation and exits
        assert exit_status(a, logs["a"]) == EXIT_REFUSED
        assert "token refused by the steering: wrong or replaced token" in logs["a"].read_text()
        assert exit_status(b, logs["b"]) == EXIT_REFUSED
        # a's point went back to the queue at once, not after lost_after
        def first_attempt() -> tuple[str, str | None]:
            return next((x.state, x.end_reason) for x in repo.attempts(point_ids=[running.point_id]))

        until(lambda: first_attempt() == ("interrupted", "revoked"), 20, "pilot a's point to be re-queued")
        c = pilot_as(tid, env, logs["c"], "c", new)
        until(lambda: any(x.pilot_id == "c" for x in repo.attempts(task_id=tid)), 60, "pilot c to run a point")
        gridhpo_cli(env, "cancel", str(tid))
        assert exit_status(c, logs["c"]) == 0
    assert {x.pilot_id for x in repo.attempts(task_id=tid)} == {"a", "c"}  # b got no point
