"""Runs examples/pbt end to end with real pilot processes: an in-process steering (which a
run may restart in the middle), pilots started again as they stop (at a short walltime, or
SIGKILLed with their evaluation). Used by tests/integration/test_pbt.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gridhpo.bookkeeping.repository import Repository
from gridhpo.protocol import Broker
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import parse_task

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pbt"


@dataclass
class PBTRun:
    task_id: int
    state: str
    message: str | None
    elapsed: float
    pilots: int
    steerings: int
    pilot_logs: list[Path] = field(default_factory=list)
    kills: int = 0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def pbt_task(*, population: int = 4, interval: int = 2, max_resource: int = 8, epoch_seconds: float = 0.0,
             seed: int = 3, options: dict[str, Any] | None = None, checkpoint_interval: float = 0.5,
             keep: int = 2, name: str = "pbt") -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((EXAMPLE / "task.yaml").read_text())
    raw["name"] = name
    raw["search_space"]["epoch_seconds"] = {"type": "fixed", "value": epoch_seconds}
    raw["optimiser"]["seed"] = seed
    raw["budget"].update(max_points=population, parallel=population, max_attempts=20)
    raw["evaluation"]["checkpoint"].update(interval=checkpoint_interval, keep=keep)
    raw["evaluation"].update(grace="2s", heartbeat="1s", lost_after="5s")
    raw["early_stopping"].update(max_resource=max_resource)
    raw["early_stopping"]["options"].update(population=population, perturbation_interval=interval, seed=seed,
                                            **(options or {}))
    return raw


class _SteeringThread:
    def __init__(self, repo: Repository, broker_url: str, task_id: int) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(repo, broker_url, task_id), daemon=True)
        self.thread.start()

    def _run(self, repo: Repository, broker_url: str, task_id: int) -> None:
        try:
            with Broker(broker_url) as broker:
                st = Steering(repo, broker, dispatch_only={task_id}, check_interval=0.5)
                st.refresh_tasks(force=True)
                try:
                    while not self.stop.is_set() and task_id in st.tasks:
                        st.step()
                finally:
                    st.close()
        except BaseException as exc:  # re-raised in the caller's thread
            self.errors.append(exc)

    def end(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        if self.errors:
            raise self.errors[0]


def run_pbt(home: Path, db_url: str, broker_url: str, store_url: str, raw: dict[str, Any], *, pilots: int = 2,
            walltime: float | None = None, kills: int = 0,
            restart_when: Callable[[Repository, int], bool] | None = None, timeout: float = 300.0) -> PBTRun:
    """``walltime``: pilots stop at it; ``kills``: that many pilots are SIGKILLed (with their
    evaluation) in the middle of a segment, once their evaluation has reported an epoch;
    ``restart_when(repo, task_id)``: the steering is stopped and a new one started once."""
    raw = {**raw, "evaluation": {**raw["evaluation"], "checkpoint": {**raw["evaluation"]["checkpoint"],
                                                                      "store": store_url}}}
    spec = parse_task(raw, "pbt", base_dir=EXAMPLE)
    repo = Repository(db_url)
    task_id, _ = submit(repo, spec, unique=True)
    steering = _SteeringThread(repo, broker_url, task_id)
    steerings, killed = 1, 0
    penv = dict(os.environ, GRIDHPO_HOME=str(home), GRIDHPO_BROKER=broker_url,
                GRIDHPO_TOKEN=repo.task(task_id).token or "")
    logdir = home / "pilot-logs"
    logdir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    t0 = time.monotonic()
    try:
        while repo.task(task_id).state == "active" and time.monotonic() - t0 < timeout:
            if not steering.thread.is_alive():
                steering.end()
                break
            if restart_when is not None and steerings == 1 and restart_when(repo, task_id):
                steering.end()
                steering = _SteeringThread(repo, broker_url, task_id)
                steerings += 1
            procs = [p for p in procs if p.poll() is None]
            if killed < kills:
                killed += _kill_mid_segment(procs, _reported(repo, task_id))
            while len(procs) < pilots:
                log = logdir / f"pilot-{len(logs)}.log"
                logs.append(log)
                args = [sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(task_id), "--site", "test",
                        "--store", store_url, "--idle-timeout", "5"]
                if walltime is not None:
                    args += ["--walltime", str(walltime)]
                with log.open("wb") as f:
                    procs.append(subprocess.Popen(args, env=penv, stdout=f, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL))
            time.sleep(0.2)
    finally:
        steering.stop.set()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        steering.end()
    row = repo.task(task_id)
    out = PBTRun(task_id, row.state, row.message, time.monotonic() - t0, len(logs), steerings, logs, killed)
    repo.close()
    return out


def _reported(repo: Repository, task_id: int) -> set[tuple[int, int]]:
    """(point id, attempt) of every attempt whose evaluation's report of a trained epoch the
    steering has recorded: a kill before that would leave nothing to judge the resume by."""
    number = {a.id: a.number for a in repo.attempts(task_id=task_id)}
    return {(m.point_id, number[m.attempt_id]) for m in repo.metrics(task_id)
            if "restored_step" in m.values and m.step > m.values["restored_step"] and m.attempt_id in number}


def _mid_segment(child: int, reported: set[tuple[int, int]]) -> bool:
    """Whether the evaluation ``child`` has trained an epoch, the steering has its report, and
    it has not reached its segment's end."""
    try:
        workdir = Path(os.readlink(f"/proc/{child}/cwd"))
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
        context = json.loads((workdir / "gridhpo.json").read_text())
        until = context["budget"]["max_resource"]
        last = json.loads(lines[-1])
    except (OSError, ValueError, IndexError, KeyError):
        return False
    return bool((context["point_id"], context["attempt"]) in reported
                and last["step"] > last["restored_step"] and last["step"] < until - 1)


def _kill_mid_segment(procs: list[subprocess.Popen[bytes]], reported: set[tuple[int, int]]) -> int:
    """SIGKILL one pilot whose evaluation is in the middle of a segment, with the evaluation."""
    for p in procs:
        children = _children(p.pid)
        if p.poll() is None and any(_mid_segment(c, reported) for c in children):
            for child in children:  # the evaluation leads its own process group
                try:
                    os.killpg(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.kill()
            p.wait()
            return 1
    return 0
