"""Whole tasks through the pilot gateway: HTTP-only pilots, HTTP and broker pilots together, the
ask/tell client, a gateway SIGKILLed and restarted. On the embedded defaults and PostgreSQL + RabbitMQ."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridhpo.bookkeeping import Repository
from gridhpo.client import Client, Task, TaskEndedError
from gridhpo.protocol import Broker
from gridhpo.steering.reports import results
from gridhpo.steering.runner import LocalPilots, submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import parse_task
from tests.gateway_harness import GatewayProcess, gateway_process
from tests.helpers import until

EVALS = Path(__file__).parent / "evals"
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/"  # what an HTTP-only pilot is given: nothing listens there


def _task(tmp_path: Path, points: int, sleep: float = 0.0, name: str = "gw") -> Any:
    shutil.copy(EVALS / "behave.py", tmp_path / "behave.py")
    return parse_task({
        "name": name,
        "search_space": {"x": {"type": "float", "low": -2, "high": 2}, "sleep": {"type": "categorical",
                                                                               "choices": [sleep]}},
        "optimiser": {"backend": "random", "seed": 5},
        "budget": {"max_points": points, "parallel": 4},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 0.5, "lost_after": 30},
    }, base_dir=tmp_path)


@contextmanager
def steering(repo: Repository, broker_url: str, tid: int, requeue_grace: float = 30.0) -> Iterator[None]:
    stop = threading.Event()
    broker = Broker(broker_url)
    s = Steering(repo, broker, dispatch_only={tid}, requeue_grace=requeue_grace, check_interval=0.5)
    thread = threading.Thread(target=s.run, kwargs={"stop": stop, "until_done": {tid}}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        broker.close()


def _pilots(tid: int, token: str, log_dir: Path, count: int, server: str | None, broker: str) -> LocalPilots:
    # the site tells them apart; a group of one gets an id of its own (LocalPilots numbers its pilots)
    extra = ["--server", server, "--site", "gateway"] if server else ["--site", "broker"]
    if count == 1:
        extra += ["--pilot-id", f"{extra[-1]}-{tid}"]
    p = LocalPilots(tid, count, NO_BROKER if server else broker, log_dir, extra_args=[*extra, "--idle-timeout", "60"],
                    token=token)
    p.start()
    return p


def _finished_once(repo: Repository, tid: int, points: int) -> list[dict[str, Any]]:
    """Every point finished, with exactly one finished attempt: none lost, none counted twice."""
    rows = results(repo, repo.task(tid))
    assert len(rows) == points and all(r["state"] == "finished" for r in rows), rows
    for r in rows:
        assert [a["state"] for a in r["attempts"]].count("finished") == 1, r
        assert abs(r["value"] - r["params"]["x"] ** 2) < 1e-12
    assert repo.counts(tid)["finished"] == points
    return rows


def _run(repo: Repository, tid: int, pilots: list[LocalPilots], timeout: float = 180) -> None:
    try:
        until(lambda: repo.task(tid).state != "active" or not any(p.alive() for p in pilots), timeout,
              "the task's end")
        assert repo.task(tid).state == "finished", [p.last_errors() for p in pilots]
    finally:
        for p in pilots:
            p.stop()


def test_a_task_runs_to_the_end_with_http_only_pilots(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    tid, _ = submit(repo, _task(tmp_path, 10))
    token = repo.task(tid).token
    assert token
    with gateway_process(db, broker, tmp_path / "gateway.log") as gw, steering(repo, broker, tid):
        _run(repo, tid, [_pilots(tid, token, tmp_path / "logs", 2, gw.url, broker)])
    _finished_once(repo, tid, 10)
    assert len(repo.pilots(tid)) == 2 and {p.site for p in repo.pilots(tid)} == {"gateway"}
    assert len(repo.metrics(tid)) == 10, "metrics went through the gateway too"


def test_an_http_pilot_and_a_broker_pilot_serve_the_same_task(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    tid, _ = submit(repo, _task(tmp_path, 16, sleep=0.3))
    token = repo.task(tid).token
    assert token
    with gateway_process(db, broker, tmp_path / "gateway.log") as gw, steering(repo, broker, tid):
        http = _pilots(tid, token, tmp_path / "http", 1, gw.url, broker)
        amqp = _pilots(tid, token, tmp_path / "amqp", 1, None, broker)
        _run(repo, tid, [http, amqp])
    rows = _finished_once(repo, tid, 16)
    by_site = {a["site"] for r in rows for a in r["attempts"]}
    assert by_site == {"gateway", "broker"}, f"both pilots evaluated points: {by_site}"


def test_the_gateway_killed_and_restarted_loses_no_point_and_counts_none_twice(servers: tuple[str, str],
                                                                             tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    tid, _ = submit(repo, _task(tmp_path, 20, sleep=0.3))
    token = repo.task(tid).token
    assert token
    gw = GatewayProcess(db, broker, tmp_path / "gateway.log")
    gw.start()
    try:
        # the folder queue cannot give back what the killed gateway held: the steering re-sends it
        with steering(repo, broker, tid, requeue_grace=3.0):
            pilots = _pilots(tid, token, tmp_path / "logs", 3, gw.url, broker)
            until(lambda: repo.counts(tid).get("finished", 0) >= 4, 120, "a few points finished")
            gw.kill()
            gw.start()
            _run(repo, tid, [pilots])
    finally:
        gw.stop()
    _finished_once(repo, tid, 20)


def test_the_client_runs_trials_and_records_a_trial_that_raises(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    spec = _task(tmp_path, 6)
    tid, _ = submit(repo, spec)
    token = repo.task(tid).token
    assert token
    seen: list[dict[str, Any]] = []
    with gateway_process(db, broker, tmp_path / "gateway.log") as gw, steering(repo, broker, tid):
        task = Client(gw.url, "an API token, unused: the pilot token is given").attach(tid, pilot_token=token)
        assert isinstance(task, Task)
        for i, trial in enumerate(task.trials()):
            try:
                with trial:
                    seen.append(trial.params)
                    trial.report(1, loss=trial.params["x"] + 1)
                    assert not trial.should_stop()
                    if i == 2:
                        raise ValueError("diverged at epoch 1")
                    trial.finish(loss=trial.params["x"] ** 2, accuracy=0.5)
            except ValueError:
                assert i == 2
        with pytest.raises(TaskEndedError, match="finished"):
            task.trial()
        task.close()
    rows = results(repo, repo.task(tid))
    assert len(rows) == 6 == len(seen)
    failed = [r for r in rows if r["state"] == "failed"]
    assert len(failed) == 1 and "ValueError: diverged at epoch 1" in failed[0]["message"]
    assert all(r["value"] == r["params"]["x"] ** 2 for r in rows if r["state"] == "finished")
    assert len(repo.metrics(tid)) == 6
    assert {p.site for p in repo.pilots(tid)} == {"client"}


def test_the_ask_and_tell_example_runs_as_shipped(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    example = Path(__file__).resolve().parents[2] / "examples" / "askandtell"
    raw = yaml.safe_load((example / "task.yaml").read_text())
    tid, _ = submit(repo, parse_task(raw, str(example / "task.yaml"), base_dir=example))
    token = repo.task(tid).token
    assert token
    with gateway_process(db, broker, tmp_path / "gateway.log") as gw, steering(repo, broker, tid):
        out = subprocess.run([sys.executable, str(example / "train.py"), "--server", gw.url, "--task", str(tid),
                              "--pilot-token", token], capture_output=True, text=True, timeout=240,
                             env={k: v for k, v in os.environ.items() if k != "GRIDHPO_API_TOKEN"})
    assert out.returncode == 0, out.stderr
    assert f"task {tid} has ended" in out.stdout
    rows = results(repo, repo.task(tid))
    assert len(rows) == raw["budget"]["max_points"] and all(r["state"] == "finished" for r in rows)
    assert len(repo.metrics(tid)) == 5 * len(rows)


def test_early_stopping_decisions_and_checkpoints_reach_http_pilots(servers: tuple[str, str], home: Path,
                                                                   tmp_path: Path) -> None:
    from tests.integration.test_early_stopping import spec as asha_task
    from tests.integration.test_early_stopping import steps_by_attempt

    db, broker = servers
    repo = Repository(db)
    tid, _ = submit(repo, asha_task(tmp_path))
    token = repo.task(tid).token
    assert token
    with gateway_process(db, broker, tmp_path / "gateway.log") as gw, steering(repo, broker, tid):
        pilots = LocalPilots(tid, 2, NO_BROKER, tmp_path / "logs", token=token, extra_args=[
            "--server", gw.url, "--store", f"file://{home}/store", "--idle-timeout", "60"])
        pilots.start()
        _run(repo, tid, [pilots])
    points = repo.points(tid)
    stopped = [p for p in points if p.state == "stopped"]
    finished = [p for p in points if p.state == "finished"]
    assert stopped and finished and len(stopped) + len(finished) == 9
    steps = steps_by_attempt(repo, tid)
    for p in stopped:
        assert max(max(s) for s in steps[p.id].values()) < 9.0
        assert "stopped by the asha scheduler" in (p.message or "")
    assert repo.checkpoints(tid), "checkpoints went to the store, their records through the gateway"
