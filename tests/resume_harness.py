"""Runs examples/resumable end to end with real pilot processes under a short walltime:
an in-process steering, and pilots started again and again as each one stops at its
walltime, until the task ends. Shared by tests/integration/test_resume.py and
benchmarks/checkpoints.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gridhpo.bookkeeping.repository import Repository
from gridhpo.protocol import Broker
from gridhpo.steering.reports import results, status_rows
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import TaskSpec, parse_task

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "resumable"


@dataclass
class ResumeRun:
    task_id: int
    state: str
    points: list[dict[str, Any]]
    elapsed: float
    pilots: int
    max_resuming: int = 0
    pilot_logs: list[Path] = field(default_factory=list)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_resumable(home: Path, db_url: str, broker_url: str, store_url: str, *, points: int = 2,
                  walltime: float = 8.0, hard_kill_after: float | None = None, interval: float = 1.0,
                  epochs: int = 16, epoch_seconds: float = 0.5, env: dict[str, str] | None = None,
                  timeout: float = 240.0) -> ResumeRun:
    """With ``hard_kill_after`` the pilots run without walltime and are SIGKILLed (with their
    evaluation) that many seconds after their evaluation started: only periodic uploads count."""
    raw = yaml.safe_load((EXAMPLE / "task.yaml").read_text())
    raw["budget"].update(max_points=points, parallel=points, max_attempts=20)
    raw["search_space"]["epochs"]["value"] = epochs
    raw["search_space"]["epoch_seconds"]["value"] = epoch_seconds
    raw["evaluation"]["checkpoint"]["interval"] = interval
    spec = parse_task(raw, "resumable", base_dir=EXAMPLE)
    return run_walltimes(home, db_url, broker_url, store_url, spec, points=points, walltime=walltime,
                         hard_kill_after=hard_kill_after, env=env, timeout=timeout)


def run_walltimes(home: Path, db_url: str, broker_url: str, store_url: str, spec: TaskSpec, *, points: int,
                  walltime: float, hard_kill_after: float | None = None, env: dict[str, str] | None = None,
                  timeout: float = 240.0) -> ResumeRun:
    """Task ``spec`` run to its end by pilots started again and again (``points`` at a time), each
    stopped by its ``walltime`` (or SIGKILLed ``hard_kill_after`` seconds into its evaluation)."""
    repo = Repository(db_url)
    task_id, _ = submit(repo, spec, unique=True)
    stop = threading.Event()
    errors: list[BaseException] = []

    def steer() -> None:
        try:
            with Broker(broker_url) as broker:
                st = Steering(repo, broker, dispatch_only={task_id}, check_interval=0.5)
                st.refresh_tasks(force=True)
                while not stop.is_set() and task_id in st.tasks:
                    st.step()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=steer, daemon=True)
    thread.start()
    penv = dict(os.environ, GRIDHPO_HOME=str(home), GRIDHPO_BROKER=broker_url,
                GRIDHPO_TOKEN=repo.task(task_id).token or "", **(env or {}))
    logdir = home / "pilot-logs"
    logdir.mkdir(parents=True, exist_ok=True)
    procs: list[tuple[subprocess.Popen[bytes], float]] = []
    logs: list[Path] = []
    t0 = time.monotonic()
    max_resuming = 0
    evaluating: dict[int, float] = {}
    try:
        while thread.is_alive() and time.monotonic() - t0 < timeout:
            procs = [(p, t) for p, t in procs if p.poll() is None]
            now = time.monotonic()
            if hard_kill_after is not None:
                for p, _ in procs:
                    # the clock starts when the pilot's evaluation does, as a node crash
                    # hits a running evaluation, not a pilot waiting for work
                    if _children(p.pid):
                        evaluating.setdefault(p.pid, now)
                    if now - evaluating.get(p.pid, now) > hard_kill_after:
                        for child in _children(p.pid):  # the evaluation leads its own process group
                            try:
                                os.killpg(child, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                        p.kill()
            while len(procs) < points:
                log = logdir / f"pilot-{len(logs)}.log"
                logs.append(log)
                args = [sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(task_id), "--site", "test",
                        "--store", store_url, "--idle-timeout", "3"]
                if hard_kill_after is None:
                    args += ["--walltime", str(walltime)]
                with log.open("wb") as f:
                    procs.append((subprocess.Popen(args, env=penv, stdout=f, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL), time.monotonic()))
            header, rows = status_rows(repo, [repo.task(task_id)])
            max_resuming = max(max_resuming, int(rows[0][header.index("resuming")]))
            time.sleep(0.2)
    finally:
        stop.set()
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _ in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    row = repo.task(task_id)
    out = ResumeRun(task_id, row.state, results(repo, row), time.monotonic() - t0, len(logs), max_resuming, logs)
    repo.close()
    return out


def reference_loss(params: dict[str, Any]) -> float:
    """The example run once, uninterrupted and without its simulated work time."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "input.json").write_text(json.dumps({**params, "epoch_seconds": 0.0}))
        subprocess.run([sys.executable, str(EXAMPLE / "train.py")], cwd=d, check=True, capture_output=True)
        return float(json.loads((Path(d) / "output.json").read_text())["loss"])
