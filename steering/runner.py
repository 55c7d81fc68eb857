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
    _log_starts: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GRIDHPO_BROKER=self.broker_url)
        if self.token:
            env["GRIDHPO_TOKEN"] = self.token
        for i in range(self.count):
            logf = (self.log_dir / f"pilot-{self.task_id}-{i}.log").open("ab")
            self._logs.append(logf)
            self._log_starts.append(logf.tell())
            cmd = [sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(self.task_id),
                   "--pilot-id", f"local-{self.task_id}-{i}-{os.getpid()}", "--site", "local", *self.extra_args]
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL))

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)

    def last_lines(self) -> list[str]:
        """Per pilot that exited: its exit status and the last error line of its log (the
        part this run wrote), e.g. ``pilot 0 (exit 1): gridhpo: error: ...``."""
        out = []
        for i, (proc, logf, start) in enumerate(zip(self.procs, self._logs, self._log_starts, strict=True)):
            code = proc.poll()
            if code is None:
                continue
            status = f"exit {code}" if code >= 0 else f"killed by {_signal_name(-code)}"
            out.append(f"pilot {i} ({status}): {_last_error(Path(logf.name), start) or 'its log is empty'}")
        return out

    def last_errors(self) -> str:
        """The pilots' last error lines in one line, the same line once."""
        seen: dict[str, None] = {}
        for line in self.last_lines():
            seen.setdefault(line.split("): ", 1)[-1], None)
        return "; ".join(seen)

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


TAIL_BYTES = 16_384  # of a pilot's log: enough for its last lines, bounded however large the log grew
ERROR_MARKS = ("error", "Error", "ERROR", "CRITICAL", "Traceback", "exception", "Exception")


def _last_error(path: Path, start: int) -> str:
    """The last line of the log from ``start`` that names an error, else its last line."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - TAIL_BYTES))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    for line in reversed(lines):
        if any(mark in line for mark in ERROR_MARKS):
            return line[:500]
    return lines[-1][:500] if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
    ``pilots[i]`` for ``task_ids[i]``).

    The run that holds the steering lock serves every active task, not only its own: a second
    ``gridhpo run`` on the same bookkeeping finds the lock taken and watches, and its task is
    served by the first. A watching run takes the lock over as soon as it is free (the first
    run ended), so every run's task is served to its end."""
    stop = stop or threading.Event()
    counts = [pilots] * len(task_ids) if isinstance(pilots, int) else list(pilots)
    if len(counts) != len(task_ids):
        raise ValueError(f"{len(counts)} pilot counts for {len(task_ids)} tasks")
    groups = [LocalPilots(tid, n, broker_url, config.home() / "logs", pilot_args or [], repo.task(tid).token)
              for tid, n in zip(task_ids, counts, strict=False)]  # lengths checked above
    lock = SteeringLock(repo)
    broker = Broker(broker_url, confirm=False)  # see Steering: its point messages need no confirms
    steering: Steering | None = None
    try:
        for group in groups:
            group.start()
        while not stop.is_set():
            if steering is None and lock.acquire():
                steering = Steering(repo, broker, lock=lock)
                if on_progress is not None:
                    steering.on_progress = lambda t: on_progress(t.progress()) if t.id in task_ids else None
                steering.refresh_tasks(force=True)
            if steering is not None:
                if not any(tid in steering.tasks for tid in task_ids):
                    break
                steering.step()
            else:
                if not any(repo.task(tid).state == "active" for tid in task_ids):
                    break
                if on_progress is not None:
                    for tid in task_ids:
                        on_progress(progress_from_db(repo, tid))
                stop.wait(0.5)  # watching: the steering of another run or `gridhpo steer` serves
            _fail_tasks_without_pilots(repo, steering, groups, stop)
    finally:
        if steering is not None:
            steering.close()
        for group in groups:
            group.stop()
        broker.close()
        lock.release()
    return [RunResult(tid, (row := repo.task(tid)).name, row.state, progress_from_db(repo, tid)) for tid in task_ids]


def _fail_tasks_without_pilots(repo: Repository, steering: Steering | None, groups: list[LocalPilots],
                               stop: threading.Event) -> None:
    """A task whose local pilots all exited would wait forever: the run ends with the pilots'
    last error lines. When one of them died (an error, a signal) the task fails with them as its
    reason; pilots that all ended cleanly (their walltime, --max-points) leave it active."""
    def waiting(group: LocalPilots) -> bool:
        if steering is not None:
            return group.task_id in steering.tasks
        return repo.task(group.task_id).state == "active"

    dead = [g for g in groups if g.count > 0 and g.alive() == 0 and not stop.is_set() and waiting(g)]
    if not dead:
        return
    if steering is not None:
        # what the pilots reported before they exited is applied first: a task they finished
        # ends as finished
        for _ in range(100):
            if steering.step() == 0:
                break
    errors = []
    for group in dead:
        if not waiting(group):
            continue
        lines = "\n".join(f"  {line}" for line in group.last_lines())
        if all(p.returncode == 0 for p in group.procs):
            errors.append(f"all {group.count} pilots of task {group.task_id} ended; the task stays active "
                          f"(`gridhpo steer` with pilots continues it; logs in {group.log_dir}):\n{lines}")
            continue
        reason = f"all {group.count} local pilots exited: {group.last_errors()}"
        if steering is not None:
            task = steering.tasks[group.task_id]
            task.error = reason
            steering.finish_if_done(task)
        else:
            repo.set_task_state(group.task_id, "failed", reason)
        errors.append(f"all {group.count} pilots of task {group.task_id} exited, so it is marked failed "
                      f"(logs in {group.log_dir}):\n{lines}")
    if errors:
        raise EvaluationError("\n".join(errors))


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

