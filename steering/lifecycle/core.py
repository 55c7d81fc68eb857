"""One task's point and attempt lifecycle: ``TaskLifecycle.apply(event) -> effects``.

The transitions of the steering's own making live here (suggestions become queued points,
silent attempts are lost, lost messages sent again, paused points revived, the task closed);
those of the pilots' reports in ``reports.py``. Every transition writes each row it changes
whole (a later write of the same row in a batch replaces the earlier one).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from gridhpo.bookkeeping.records import AttemptFields, AttemptUpdate, NewPoint, PointUpdate
from gridhpo.protocol import ControlMessage, Event, PointMessage
from gridhpo.protocol.messages import PointObjective, ResourceBudget
from gridhpo.steering.lifecycle import reports
from gridhpo.steering.lifecycle.effects import Effect, SendControl, SendPoint, Tell
from gridhpo.steering.lifecycle.events import (
    Adopted,
    AttemptsCreated,
    LateFound,
    LifecycleEvent,
    PointsCreated,
    Received,
    ResendCheck,
    ReviveCheck,
    Revoked,
    Suggested,
    TaskClosed,
    TimeoutCheck,
    TokenReplaced,
)
from gridhpo.steering.lifecycle.pbt import PopulationRun
from gridhpo.steering.lifecycle.states import AttemptState, OpenPoint, PointState
from gridhpo.steering.objectives import Outcome
from gridhpo.steering.optimisers import Suggestion
from gridhpo.steering.schedulers import Scheduler
from gridhpo.steering.schedulers.pbt import PBT
from gridhpo.steering.taskfile import TaskSpec

log = logging.getLogger(__name__)

#: event ids remembered per task: several minutes of a busy task's events
RECENT_EVENTS = 20_000


class TaskLifecycle:
    """The open points of one task and its counts; see the package's docstring for the contract."""

    def __init__(self, task_id: int, name: str, spec: TaskSpec, queue: str, scheduler: Scheduler, *,
                 open_points: dict[int, OpenPoint] | None = None, created: int = 0, finished: int = 0,
                 failed: int = 0, next_number: int | None = None) -> None:
        self.task_id = task_id
        self.name = name
        self.spec = spec
        self.queue = queue  # the points queue of the task's current token
        self.scheduler = scheduler
        self.open: dict[int, OpenPoint] = open_points if open_points is not None else {}
        self.created = created
        self.finished = finished
        self.failed = failed
        self.best_value: float | None = None
        self.best_number: int | None = None
        # Ids of the events applied lately, oldest first. Kept in memory only, and bounded: an
        # event is acknowledged once its effect is committed, so a redelivery that outlives this
        # steering finds its point already ended (and then counts nothing); the ids only have to
        # cover the redeliveries and duplicates this steering itself sees.
        self.recent_events: OrderedDict[str, None] = OrderedDict()
        self.late: dict[str, Event] = {}  # late results waiting for their attempt's LateFound
        self.pending: list[Suggestion] = []  # suggested, waiting for their PointsCreated
        self.next_number = created if next_number is None else next_number
        self._wire: dict[str, Any] | None = None  # the parts of a point message common to the task
        # the clock of the last ResendCheck: its queue length is an observation of that moment,
        # which the messages it sent again have made stale (so one of the same moment is a replay)
        self._resend_at = -float("inf")
        # population-based training: members as chains of segments (lifecycle/pbt.py)
        self.pbt = PopulationRun.of(spec, scheduler) if isinstance(scheduler, PBT) else None

    # ------------------------------------------------------------------ views

    @property
    def in_flight(self) -> int:
        """Points queued or running (paused ones hold no slot)."""
        return sum(1 for p in self.open.values() if p.state != PointState.PAUSED)

    def count(self, state: PointState) -> int:
        return sum(1 for p in self.open.values() if p.state == state)

    def first_time(self, event_id: str) -> bool:
        """True the first time an event id is seen (and remembers it)."""
        if event_id in self.recent_events:
            self.recent_events.move_to_end(event_id)
            return False
        self.recent_events[event_id] = None
        if len(self.recent_events) > RECENT_EVENTS:
            self.recent_events.popitem(last=False)
        return True

    def record_value(self, number: int, value: float) -> None:
        if self.best_value is None or self.spec.better(value, self.best_value):
            self.best_value, self.best_number = value, number

    def has_stale(self, now: float, grace: float) -> bool:
        """Whether a queued point waited longer than ``grace``: then a ``ResendCheck`` needs the
        queue's length."""
        return any(op.state == PointState.QUEUED and now - op.dispatched_at > grace for op in self.open.values())

    def point_message(self, op: OpenPoint) -> PointMessage:
        if self._wire is None:
            es = self.spec.early_stopping
            # the typed parts common to the task's points, made once
            self._wire = {"evaluation": self.spec.evaluation,
                          "objective": PointObjective(metric=self.spec.objective.metric, mode=self.spec.objective.mode),
                          "budget": None if es.scheduler == "none" else ResourceBudget(
                              resource=es.resource, min_resource=es.min_resource,
                              max_resource=es.max_resource, scheduler=es.scheduler)}
        wire = self._wire
        if op.until is not None and wire["budget"] is not None:
            # a population member's segment ends at its perturbation point
            wire = {**wire, "budget": replace(wire["budget"], max_resource=op.until)}
        return PointMessage(task_id=self.task_id, task_name=self.name, point_id=op.id, number=op.number,
                            attempt=op.attempt, params=op.params, restore=op.restore, **wire)

    def send(self, op: OpenPoint) -> SendPoint:
        return SendPoint(self.queue, self.point_message(op))

    # ------------------------------------------------------------------ transitions

    def apply(self, event: LifecycleEvent) -> list[Effect]:
        """The effects of one event, in order; the state is changed as they assume."""
        out: list[Effect] = []
        if isinstance(event, Received):
            reports.receive(self, event, out)
        elif isinstance(event, LateFound):
            reports.late_found(self, event, out)
        elif isinstance(event, Revoked):
            self._revoked(event, out)
        elif isinstance(event, TimeoutCheck):
            self._timeouts(event.now, out)
        elif isinstance(event, ResendCheck):
            self._resend(event, out)
        elif isinstance(event, ReviveCheck):
            self._revive(event.now, out)
        elif isinstance(event, Suggested):
            self._suggested(event, out)
        elif isinstance(event, PointsCreated):
            self._created(event, out)
        elif isinstance(event, AttemptsCreated):
            for op in self.open.values():
                if op.attempt_id is None and (op.id, op.attempt) in event.ids:
                    op.attempt_id = event.ids[(op.id, op.attempt)]
        elif isinstance(event, TokenReplaced):
            self._token_replaced(event.queue, out)
        elif isinstance(event, Adopted):
            if self.pbt is not None:
                self.pbt.adopted(self, event, out)
        else:
            self._close(event, out)
        return out

    def _suggested(self, ev: Suggested, out: list[Effect]) -> None:
        """Queued points for new suggestions, never past the depth nor the budget (a
        suggestion numbered below the next number was applied already)."""
        room = min(ev.depth - self.in_flight - len(self.pending), self.spec.budget.max_points - self.created)
        for s in ev.points:
            if s.number < self.next_number or room <= 0:
                continue
            room -= 1
            self.next_number = s.number + 1
            self.created += 1
            self.pending.append(s)
            out.append(NewPoint(self.task_id, s.number, s.params))

    def _created(self, ev: PointsCreated, out: list[Effect]) -> None:
        for point_id, s in zip(ev.ids, self.pending, strict=False):
            op = OpenPoint(point_id, s.number, s.params, PointState.QUEUED, 1, ev.now)
            self.open[op.id] = op
            if self.pbt is not None:
                self.pbt.joined(self, op, ev.now, out)
            out.append(SendPoint(self.queue, self.point_message(op)))
        self.pending = []

    def _token_replaced(self, queue: str, out: list[Effect]) -> None:
        """Queued points move to the new token's queue, where the old token's pilots cannot find them."""
        if queue == self.queue:
            return
        self.queue = queue
        out.extend(SendPoint(queue, self.point_message(op)) for op in self.open.values()
                   if op.state == PointState.QUEUED)

    def _revoked(self, ev: Revoked, out: list[Effect]) -> None:
        """A running attempt whose pilot's token was refused goes back to the queue now."""
        op = self.open.get(ev.point_id)
        if op is None or (op.state, op.attempt, op.pilot_id) != (PointState.RUNNING, ev.attempt, ev.pilot_id):
            return
        self.interrupt(op, AttemptState.INTERRUPTED, f"its pilot's token was refused: {ev.reason}", ev.now, out,
                       "revoked")

    def _timeouts(self, now: float, out: list[Effect]) -> None:
        lost_after = self.spec.evaluation.lost_after
        for op in list(self.open.values()):
            if op.state == PointState.RUNNING and now - op.last_seen > lost_after:
                self.interrupt(op, AttemptState.LOST, f"no heartbeat for {now - op.last_seen:.0f}s "
                               f"(evaluation.lost_after {lost_after:g}s)", now, out)

    def _resend(self, ev: ResendCheck, out: list[Effect]) -> None:
        """Queued points whose message is no longer in the queue are sent again.

        A queue is first in, first out, so when it holds fewer messages than the task has
        queued points, the missing ones are the oldest: a pilot took them and died before it
        reported the start (a virtual transport cannot give them back). Only points queued
        longer than ``grace`` qualify, so a message in a pilot's hands is left alone. A
        point sent twice is harmless: its events are applied once.
        """
        if ev.now <= self._resend_at:
            return
        self._resend_at = ev.now
        queued = sorted((op for op in self.open.values() if op.state == PointState.QUEUED),
                        key=lambda o: o.dispatched_at)
        stale = [op for op in queued if ev.now - op.dispatched_at > ev.grace]
        missing = min(len(queued) - ev.waiting, len(stale))
        for op in stale[:max(missing, 0)]:
            log.warning("task %s point %d attempt %d: its message was lost; sent again",
                        self.name, op.number, op.attempt)
            op.dispatched_at = ev.now
            self.write_point(op, PointState.QUEUED, out)
            out.append(SendPoint(self.queue, self.point_message(op)))

    def _revive(self, now: float, out: list[Effect]) -> None:
        """Stop-and-go: paused points the scheduler now judges worth it take free slots first."""
        if not self.spec.early_stopping.revive:
            return
        free = self.spec.budget.parallel - self.in_flight
        paused = {op.number: op for op in self.open.values() if op.state == PointState.PAUSED}
        if free <= 0 or not paused:
            return
        for number in self.scheduler.revive(sorted(paused))[:free]:
            op = paused[number]
            log.info("task %s point %d: revived from its checkpoint", self.name, number)
            self.requeue(op, "revived", now, out)

    def _close(self, ev: TaskClosed, out: list[Effect]) -> None:
        """The task ended: its open points are cancelled (a paused one stopped with the value it
        reached) and the pilots running them told to stop (a cancelled campaign frees its GPUs)."""
        for op in self.open.values():
            if op.state == PointState.RUNNING and op.pilot_id:
                out.append(SendControl(op.pilot_id, ControlMessage(
                    task_id=self.task_id, point_id=op.id, attempt=op.attempt, action="stop",
                    reason=f"task ended: {ev.message or ev.state}")))
        for op in self.open.values():
            if op.state == PointState.PAUSED:
                # never revived: it ends as stopped, with the value it had reached
                self.write_point(op, PointState.STOPPED, out, op.last_value,
                                 "paused, not revived before the task ended", ev.now)
                continue
            self.write_point(op, PointState.CANCELLED, out, message=ev.message or "task ended", ended_at=ev.now)
            if op.attempt_id is not None:
                self.write_attempt(op, AttemptState.CANCELLED, out, "task ended", ev.now)
        self.open.clear()
        self.pending = []

    # ------------------------------------------------------------------ shared steps

    def fail(self, op: OpenPoint, reason: str, stderr: str | None, at: float, out: list[Effect],
             attempt_state: AttemptState = AttemptState.FAILED, end_reason: str | None = None,
             value: float | None = None) -> None:
        """The point ends failed; ``value`` (objective.exhausted_value, phpo's "very large loss")
        is recorded on it and told to the optimiser in place of failure_value."""
        self.write_point(op, PointState.FAILED, out, value, message=reason, ended_at=at)
        self.write_attempt(op, attempt_state, out, end_reason or attempt_state, at, None, reason, stderr)
        del self.open[op.id]
        self.failed += 1
        out.append(Tell(op.number, self.spec.objective.failure_value if value is None else value))

    def interrupt(self, op: OpenPoint, state: AttemptState, reason: str, at: float, out: list[Effect],
                  end_reason: str | None = None) -> None:
        """End the current attempt; the point goes back to the queue while attempts remain."""
        max_attempts = self.spec.budget.max_attempts
        # a population member's attempts are counted per segment: it needs one per segment
        if op.attempt - op.segment_attempt + 1 >= max_attempts:
            self.fail(op, f"{reason}; gave up after {op.attempt} attempts (budget.max_attempts)", None, at, out,
                      attempt_state=state, end_reason=end_reason or state,
                      value=self.spec.objective.exhausted_value)
            return
        self.write_attempt(op, state, out, end_reason or state, at, None, reason)
        log.info("task %s point %d attempt %d %s (%s): re-queued", self.name, op.number, op.attempt, state, reason)
        self.requeue(op, reason, at, out)

    def requeue(self, op: OpenPoint, reason: str, now: float, out: list[Effect]) -> None:
        """The point's next attempt goes to the queue (its pilot restores the last checkpoint)."""
        op.next_attempt(now)
        self.write_point(op, PointState.QUEUED, out, message=reason)
        out.append(SendPoint(self.queue, self.point_message(op)))

    @staticmethod
    def write_point(op: OpenPoint, state: PointState, out: list[Effect], value: float | None = None,
                    message: str | None = None, ended_at: float | None = None,
                    outcome: Outcome | None = None) -> None:
        out.append(PointUpdate(op.id, state, op.attempt, op.dispatched_at, value, message, ended_at,
                               None if outcome is None else outcome.recorded,
                               None if outcome is None else outcome.feasible))

    @staticmethod
    def write_attempt(op: OpenPoint, state: AttemptState, out: list[Effect], end_reason: str | None = None,
                      ended_at: float | None = None, value: float | None = None, message: str | None = None,
                      stderr: str | None = None) -> None:
        """Set the current attempt's fields, whether its row exists or is new in this batch."""
        fields = AttemptFields(state, op.last_seen, ended_at, end_reason, value, message, stderr)
        out.append(AttemptUpdate(op.id, op.attempt, op.attempt_id, fields))
