"""The steering's in-memory view of its active tasks, rebuilt from the bookkeeping at start.

The steering is the only writer of point and attempt rows, so this view stays equal to the
database as long as every change is written in the same step that makes it.
"""
from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gridhpo.bookkeeping.models import TERMINAL_POINT_STATES
from gridhpo.bookkeeping.repository import Repository, TaskRow
from gridhpo.protocol import points_queue
from gridhpo.steering import optimisers, schedulers
from gridhpo.steering.depth import QueueDepth
from gridhpo.steering.driver import OptimiserDriver
from gridhpo.steering.optimisers import Optimiser, Trial
from gridhpo.steering.schedulers import Scheduler
from gridhpo.steering.taskfile import TaskSpec
from gridhpo.tokens import same

log = logging.getLogger(__name__)

#: event ids remembered per task: several minutes of a busy task's events
RECENT_EVENTS = 20_000


@dataclass
class OpenPoint:
    """A point not yet terminal: queued (its message is in the queue) or running."""

    id: int
    number: int
    params: dict[str, Any]
    state: str
    attempt: int
    dispatched_at: float
    attempt_id: int | None = None
    last_seen: float = 0.0
    pilot_id: str | None = None
    last_value: float | None = None  # the objective last reported in metrics.jsonl
    stopping: bool = False  # a stop or pause was sent to its pilot


@dataclass
class TaskState:
    row: TaskRow
    spec: TaskSpec
    optimiser: Optimiser
    driver: OptimiserDriver
    scheduler: Scheduler
    open: dict[int, OpenPoint] = field(default_factory=dict)
    created: int = 0
    finished: int = 0
    failed: int = 0
    best_value: float | None = None
    best_number: int | None = None
    error: str | None = None
    wire: dict[str, Any] | None = None  # the parts of a point message common to the task
    depth: QueueDepth = field(init=False)
    # Ids of the events applied lately, oldest first. Kept in memory only, and bounded: an
    # event is acknowledged once its effect is committed, so a redelivery that outlives this
    # steering finds its point already ended (and then counts nothing); the ids only have to
    # cover the redeliveries and duplicates this steering itself sees.
    recent_events: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.depth = QueueDepth(self.spec.budget.parallel + self.spec.budget.min_queued)

    @property
    def id(self) -> int:
        return self.row.id

    def first_time(self, event_id: str) -> bool:
        """True the first time an event id is seen (and remembers it)."""
        if event_id in self.recent_events:
            self.recent_events.move_to_end(event_id)
            return False
        self.recent_events[event_id] = None
        if len(self.recent_events) > RECENT_EVENTS:
            self.recent_events.popitem(last=False)
        return True

    def count(self, state: str) -> int:
        return sum(1 for p in self.open.values() if p.state == state)

    @property
    def queue(self) -> str:
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
    def in_flight(self) -> int:
        """Points queued or running (paused ones hold no slot)."""
        return sum(1 for p in self.open.values() if p.state != "paused")

    def record_value(self, number: int, value: float) -> None:
        if self.best_value is None or self.spec.better(value, self.best_value):
            self.best_value, self.best_number = value, number

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
            "queued": self.count("queued"), "running": self.count("running"),
            "best_value": self.best_value, "best_number": self.best_number,
        }


def load_task(repo: Repository, row: TaskRow) -> TaskState:
    """Rebuild a task's state and its optimiser from the recorded points."""
    spec = TaskSpec.from_dict(row.spec, source=f"task {row.name}")
    opt = optimisers.create(spec)
    points = repo.points(row.id)
    trials: list[Trial] = []
    open_points: dict[int, OpenPoint] = {}
    finished: list[tuple[int, float]] = []
    failed = 0
    for p in points:
        if p.state == "finished" and p.value is not None and math.isfinite(p.value):
            trials.append(Trial(p.number, p.params, "done", p.value))
            finished.append((p.number, p.value))
        elif p.state == "stopped" and p.value is not None and math.isfinite(p.value):
            trials.append(Trial(p.number, p.params, "done", p.value))  # told its last value when stopped
        elif p.state in TERMINAL_POINT_STATES:
            fv = spec.objective.failure_value
            # told as failure_value when the user asked for one, as the live steering does
            trials.append(Trial(p.number, p.params, "failed") if fv is None or p.state != "failed"
                          else Trial(p.number, p.params, "done", fv))
            failed += p.state == "failed"
        else:
            trials.append(Trial(p.number, p.params, "pending"))
            open_points[p.id] = OpenPoint(p.id, p.number, p.params, p.state, p.attempt, p.dispatched_at)
    opt.restore(trials)
    driver = OptimiserDriver(opt, ahead=spec.budget.parallel + spec.budget.min_queued)
    state = TaskState(row=row, spec=spec, optimiser=opt, driver=driver, scheduler=schedulers.create(spec),
                      open=open_points, created=len(points), finished=len(finished), failed=failed)
    for number, value in finished:
        state.record_value(number, value)
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


def objective_report(spec: TaskSpec, values: dict[str, Any], step: Any) -> tuple[float, float] | None:
    """(step, value) of a metrics line, the step being the task's resource; None if absent."""
    value = values.get(spec.objective.metric)
    step = values.get(spec.early_stopping.resource, step)
    if not (_finite(value) and _finite(step)):
        return None
    assert value is not None and step is not None
    return float(step), float(value)


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


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
