"""``gridhpo run``: submit a task, steer it and run local pilots until it is done.

Importable and tested without the CLI; the CLI only parses options and prints.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gridhpo import config
from gridhpo.bookkeeping.repository import Repository
from gridhpo.errors import EvaluationError
from gridhpo.protocol import Broker
from gridhpo.steering.lock import SteeringLock
from gridhpo.steering.reports import best_point
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import TaskSpec, check_name
from gridhpo.tokens import new_token

log = logging.getLogger(__name__)


def submit(repo: Repository, spec: TaskSpec, name: str | None = None, unique: bool = False) -> tuple[int, str]:
    """Record a new active task; with ``unique`` a taken name gets a ``-2``, ``-3``... suffix."""
    if name is not None:
        check_name(name, "--name")
    base = name or spec.name
    candidate = base
    for n in range(2, 10_000):
        if not unique or repo.find_task(candidate) is None:
            break
        candidate = f"{base}-{n}"
    data = spec.to_dict()
    data["name"] = candidate
    return repo.create_task(candidate, data, token=new_token()), candidate


@dataclass
class LocalPilots:
    """N ``gridhpo pilot`` processes on this machine, stopped together."""

    task_id: int
    count: int
    broker_url: str
    log_dir: Path
    extra_args: list[str] = field(default_factory=list)
    token: str | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GRIDHPO_BROKER=self.broker_url)
        if self.token:
            env["GRIDHPO_TOKEN"] = self.token
        for i in range(self.count):
            logf = (self.log_dir / f"pilot-{self.task_id}-{i}.log").open("ab")
            self._logs.append(logf)
            cmd = [sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(self.task_id),
                   "--pilot-id", f"local-{self.task_id}-{i}-{os.getpid()}", "--site", "local", *self.extra_args]
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL))

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)

    def stop(self, grace: float = 10.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self._logs:
            f.close()


@dataclass
class RunResult:
    task_id: int
    name: str
    state: str
    progress: dict[str, Any]


def run_task(repo: Repository, broker_url: str, task_id: int, pilots: int,
             on_progress: Callable[[dict[str, Any]], None] | None = None,
             pilot_args: list[str] | None = None, stop: threading.Event | None = None) -> RunResult:
    """Steer ``task_id`` (or watch it, when another steering holds this bookkeeping) with
    ``pilots`` local pilot processes, until the task ends or ``stop`` is set."""
    return run_tasks(repo, broker_url, [task_id], pilots, on_progress, pilot_args, stop)[0]


def run_tasks(repo: Repository, broker_url: str, task_ids: list[int], pilots: int | Sequence[int],
              on_progress: Callable[[dict[str, Any]], None] | None = None,
              pilot_args: list[str] | None = None, stop: threading.Event | None = None) -> list[RunResult]:
    """``run_task`` for several tasks at once, one steering, ``pilots`` local pilots each (or
    ``pilots[i]`` for ``task_ids[i]``)."""
    stop = stop or threading.Event()
    counts = [pilots] * len(task_ids) if isinstance(pilots, int) else list(pilots)
    if len(counts) != len(task_ids):
        raise ValueError(f"{len(counts)} pilot counts for {len(task_ids)} tasks")
    groups = [LocalPilots(tid, n, broker_url, config.home() / "logs", pilot_args or [], repo.task(tid).token)
              for tid, n in zip(task_ids, counts, strict=False)]  # lengths checked above
    lock = SteeringLock(repo)
    own_steering = lock.acquire()
    broker = Broker(broker_url, confirm=False)  # see Steering: its point messages need no confirms
    steering: Steering | None = None
    try:
        for group in groups:
            group.start()
        if own_steering:
            steering = Steering(repo, broker, dispatch_only=set(task_ids), lock=lock)
            if on_progress is not None:
                steering.on_progress = lambda t: on_progress(t.progress())
            steering.refresh_tasks(force=True)
            while not stop.is_set() and any(tid in steering.tasks for tid in task_ids):
                steering.step()
                for group in groups:
                    if group.task_id in steering.tasks and group.alive() == 0 and group.count > 0:
                        raise EvaluationError(f"all {group.count} pilots of task {group.task_id} exited; "
                                              f"see their logs in {group.log_dir}")
        else:
            log.info("another steering serves %s; watching tasks %s", config.redact(repo.url), task_ids)
            while not stop.is_set() and any(repo.task(tid).state == "active" for tid in task_ids):
                if on_progress is not None:
                    for tid in task_ids:
                        on_progress(progress_from_db(repo, tid))
                time.sleep(0.5)
    finally:
        if steering is not None:
            steering.close()
        for group in groups:
            group.stop()
        broker.close()
        lock.release()
    return [RunResult(tid, (row := repo.task(tid)).name, row.state, progress_from_db(repo, tid)) for tid in task_ids]


def progress_from_db(repo: Repository, task_id: int) -> dict[str, Any]:
    row = repo.task(task_id)
    spec = TaskSpec.from_dict(row.spec)
    counts = repo.counts(task_id)
    best = best_point(repo, row)
    return {
        "task": row.name, "id": task_id, "max_points": spec.budget.max_points,
        "created": sum(counts.values()), "finished": counts.get("finished", 0), "failed": counts.get("failed", 0),
        "queued": counts.get("queued", 0), "running": counts.get("running", 0),
        "best_value": best[1] if best else None, "best_number": best[0] if best else None,
    }

