"""The steering's in-memory view of its active tasks, rebuilt from the bookkeeping at start.

The steering is the only writer of point and attempt rows, so this view stays equal to the
database as long as every change is written in the same step that makes it.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from gridhpo.bookkeeping.repository import Repository, TaskRow
from gridhpo.protocol import points_queue
from gridhpo.steering import optimisers, schedulers
from gridhpo.steering.depth import QueueDepth
from gridhpo.steering.driver import OptimiserDriver
from gridhpo.steering.lifecycle import OpenPoint, PointState, TaskLifecycle
from gridhpo.steering.lifecycle.reports import objective_report
from gridhpo.steering.lifecycle.states import OPEN_POINT_STATES
from gridhpo.steering.optimisers import Optimiser, Trial
from gridhpo.steering.schedulers import Scheduler
from gridhpo.steering.taskfile import TaskSpec
from gridhpo.tokens import same

log = logging.getLogger(__name__)

__all__ = ["OpenPoint", "TaskState", "load_task", "objective_report", "replay_reports"]


@dataclass
class TaskState:
    """A task as the steering serves it: its bookkeeping row, its optimiser (and the driver
    that keeps it off the event path), its depth, and its lifecycle core, which holds the
    open points and the counts."""

    row: TaskRow
    spec: TaskSpec
    optimiser: Optimiser
    driver: OptimiserDriver
    core: TaskLifecycle
    error: str | None = None
    depth: QueueDepth = field(init=False)

    def __post_init__(self) -> None:
        self.depth = QueueDepth(self.spec.budget.parallel + self.spec.budget.min_queued)

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def open(self) -> dict[int, OpenPoint]:
        return self.core.open

    @property
    def created(self) -> int:
        return self.core.created

    @property
    def finished(self) -> int:
        return self.core.finished

    @property
    def failed(self) -> int:
        return self.core.failed

    @property
    def best_value(self) -> float | None:
        return self.core.best_value

    @property
    def scheduler(self) -> Scheduler:
        return self.core.scheduler

    @property
    def in_flight(self) -> int:
        return self.core.in_flight

    @property
    def queue(self) -> str:
        """The points queue of the task's token as the bookkeeping has it now."""
        return points_queue(self.id, self.row.token)

    def refuses(self, auth: str, now: float) -> str | None:
        """Why an event presenting ``auth`` is refused, or None (a task without a token takes all)."""
        if self.row.token is None:
            return None
        if not same(auth, self.row.token):
            return "wrong or replaced token" if auth else "no token"
        if self.row.token_expires_at is not None and now > self.row.token_expires_at:
            return "token expired"
        return None

    @property
    def done(self) -> bool:
        return self.in_flight == 0 and (self.created >= self.spec.budget.max_points or self.driver.exhausted)

    @property
    def too_many_failures(self) -> bool:
        limit = self.spec.budget.max_failures
        return limit is not None and self.failed >= max(1, limit)

    def progress(self) -> dict[str, Any]:
        return {
            "task": self.row.name, "id": self.id, "max_points": self.spec.budget.max_points,
            "created": self.created, "finished": self.finished, "failed": self.failed,
            "queued": self.core.count(PointState.QUEUED), "running": self.core.count(PointState.RUNNING),
            "best_value": self.core.best_value, "best_number": self.core.best_number,
        }


def load_task(repo: Repository, row: TaskRow) -> TaskState:
    """Rebuild a task's state and its optimiser from the recorded points."""
    spec = TaskSpec.from_dict(row.spec, source=f"task {row.name}")
    opt = optimisers.create(spec)
    points = repo.points(row.id)
    trials, open_points, finished, failed = _restore(spec, points)
    opt.restore(trials)
    driver = OptimiserDriver(opt, ahead=spec.budget.parallel + spec.budget.min_queued)
    core = TaskLifecycle(row.id, row.name, spec, points_queue(row.id, row.token), schedulers.create(spec),
                         open_points=open_points, created=len(points), finished=len(finished), failed=failed,
                         next_number=max((p.number for p in points), default=-1) + 1)
    state = TaskState(row=row, spec=spec, optimiser=opt, driver=driver, core=core)
    if core.pbt is not None:  # the population and its pending exploits, from the lineage
        core.pbt.rebuild(row.id, repo.lineage(row.id), open_points)
    for number, value in finished:
        if value is not None:
            core.record_value(number, value)
    if open_points:
        now = time.time()
        for a in repo.attempts(point_ids=list(open_points)):
            op = open_points[a.point_id]
            if a.number == op.attempt:
                op.attempt_id = a.id
                op.pilot_id = a.pilot_id
                # every running attempt gets a fresh grace period: its heartbeats may
                # have waited in the queue while no steering was there to read them
                op.last_seen = now
    if spec.early_stopping.scheduler != "none":
        replay_reports(repo, state, {p.id: p.number for p in points})
    log.info("task %s (%d): %d points, %d open, %d finished, %d failed", row.name, row.id,
             state.created, len(state.open), state.finished, state.failed)
    return state


def _restore(spec: TaskSpec, points: list[Any]) -> tuple[list[Trial], dict[int, OpenPoint],
                                                          list[tuple[int, float | None]], int]:
    """The optimiser's trials, the open points, the finished (number, value)s (value None: it
    cannot be the best) and the count of failed points, from a task's recorded points."""
    trials: list[Trial] = []
    open_points: dict[int, OpenPoint] = {}
    finished: list[tuple[int, float | None]] = []
    failed = 0
    goals = spec.goals
    for p in points:
        if p.state == PointState.FINISHED and p.value is not None and math.isfinite(p.value):
            outcome = None if goals.plain else goals.recorded_outcome(p.metric_values or {})
            if outcome is not None:
                trials.append(Trial(p.number, p.params, "done", p.value, outcome.values, outcome.violations))
                # an infeasible point is never the best
                finished.append((p.number, p.value if outcome.feasible else None))
            elif goals.plain:
                trials.append(Trial(p.number, p.params, "done", p.value))
                finished.append((p.number, p.value))
            else:  # no values recorded for the task's objectives: nothing to tell
                trials.append(Trial(p.number, p.params, "failed"))
                finished.append((p.number, None))
        elif p.state == PointState.STOPPED and p.value is not None and math.isfinite(p.value):
            trials.append(Trial(p.number, p.params, "done", p.value))  # told its last value when stopped
        elif p.state == PointState.FAILED and p.value is not None and math.isfinite(p.value):
            trials.append(Trial(p.number, p.params, "done", p.value))  # objective.exhausted_value, told as such
            failed += 1
        elif p.state not in OPEN_POINT_STATES:
            fv = spec.objective.failure_value
            # told as failure_value when the user asked for one, as the live steering does
            trials.append(Trial(p.number, p.params, "failed") if fv is None or p.state != PointState.FAILED
                          else Trial(p.number, p.params, "done", fv))
            failed += p.state == PointState.FAILED
        else:
            trials.append(Trial(p.number, p.params, "pending"))
            open_points[p.id] = OpenPoint(p.id, p.number, p.params, PointState(p.state), p.attempt, p.dispatched_at)
    return trials, open_points, finished, failed


def replay_reports(repo: Repository, state: TaskState, numbers: dict[int, int]) -> None:
    """Rebuild the scheduler from the recorded reports; its decisions were acted on already."""
    sign = 1.0 if state.spec.objective.mode == "min" else -1.0
    by_id = {op.id: op for op in state.open.values()}
    for m in sorted(repo.metrics(state.id), key=lambda m: m.at):
        report = objective_report(state.spec, m.values, m.step)
        if report is None or m.point_id not in numbers:
            continue
        state.scheduler.report(numbers[m.point_id], report[0], sign * report[1])
        if m.point_id in by_id:
            by_id[m.point_id].last_value = report[1]
