"""The user's steering program ends with its task, through the steering service: `gridhpo
cancel` (the task leaves the active ones) and the service stopping both kill a run in progress
with its process group, instead of leaving it running until its time limit."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gridhpo import config
from gridhpo.bookkeeping import Repository
from gridhpo.protocol import Broker
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import parse_task
from tests.unit.test_steering_kill import alive

pytestmark = pytest.mark.integration


def until(condition: Callable[[], bool], steering: Steering | None = None, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if steering is not None:
            steering.step()
        if condition():
            return True
        time.sleep(0.05)
    return False


def hanging_task(repo: Repository, folder: Path, name: str) -> tuple[int, Path]:
    """A task whose steering runs for minutes (a child of its own), saying its pids in ``folder``."""
    folder.mkdir()
    command = (f"sleep 300 & echo $! > {folder}/child; echo $$ > {folder}/shell; wait; "
               "echo '[{\"x\": 0.5}]' > %OUT")
    spec = parse_task({"name": name, "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
                       "optimiser": {"backend": "steering", "command": command},
                       "evaluation": {"command": "true"}})
    tid, _ = submit(repo, spec)
    return tid, folder


def pids(folder: Path) -> list[int]:
    return [int((folder / n).read_text()) for n in ("shell", "child")]


def started(folder: Path) -> bool:
    return all((folder / n).exists() and (folder / n).read_text().strip() for n in ("shell", "child"))


def test_cancel_and_service_stop_kill_the_steering_run(home: Path, tmp_path: Path) -> None:
    repo = Repository(config.db_url())
    cancelled, a = hanging_task(repo, tmp_path / "a", "cancelled")
    _, b = hanging_task(repo, tmp_path / "b", "served")
    steering = Steering(repo, Broker(config.broker_url(), confirm=False))
    running: list[int] = []
    try:
        steering.refresh_tasks(force=True)
        assert until(lambda: started(a) and started(b), steering)
        running = pids(a) + pids(b)
        assert all(alive(p) for p in running)
        repo.set_task_state(cancelled, "cancelled", "cancelled by the user")  # what `gridhpo cancel` writes
        steering.refresh_tasks(force=True)
        assert until(lambda: not any(alive(p) for p in pids(a)), timeout=10.0)
        assert all(alive(p) for p in pids(b))  # the other task's steering runs on
        steering.close()  # the service stopping
        assert until(lambda: not any(alive(p) for p in pids(b)), timeout=10.0)
    finally:
        steering.close()
        for p in running:
            if alive(p):  # a failing run leaves nothing behind
                os.kill(p, signal.SIGKILL)
