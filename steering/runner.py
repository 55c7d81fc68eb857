"""``gridhpo run``: submit a task, steer it and run local pilots until it is done.

Importable and tested without the CLI; the CLI only parses options and prints. Submission
(submission.py), the local pilot processes (local_pilots.py) and progress from the bookkeeping
(progress.py) are modules of their own; this one holds the run: serve while holding the
steering lock, watch while another steering serves, and end a task whose pilots all exited.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gridhpo import config
from gridhpo.bookkeeping.repository import Repository
from gridhpo.errors import EvaluationError
from gridhpo.protocol import Broker
from gridhpo.steering.local_pilots import LocalPilots
from gridhpo.steering.lock import SteeringLock
from gridhpo.steering.progress import progress_from_db
from gridhpo.steering.service import Steering
from gridhpo.steering.submission import submit

log = logging.getLogger(__name__)

__all__ = ["LocalPilots", "RunResult", "progress_from_db", "run_task", "run_tasks", "submit"]


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
