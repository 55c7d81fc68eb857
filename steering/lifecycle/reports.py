"""The transitions of pilots' reports: a round's events of one task, and late results.

Liveness is judged by the steering's clock, when an event is received, never by the event's
own time: a pilot's clock may run a minute behind (its live points would look silent) or an
hour ahead (its dead ones would look alive). The times the bookkeeping keeps of an attempt
(started, ended, metrics) are the pilot's.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from gridhpo.bookkeeping.records import (
    AttemptFields,
    CheckpointEvent,
    LateResult,
    MetricLine,
    NewAttempt,
    PilotDone,
    PilotSeen,
)
from gridhpo.protocol import CONTROL_ACTIONS, ControlMessage, Event
from gridhpo.protocol.events import (
    INTERRUPT_CAUSES,
    CheckpointData,
    FailedData,
    FinishedData,
    InterruptedData,
    MetricData,
    StartedData,
)
from gridhpo.steering.lifecycle.effects import Effect, LookUpLate, SendControl, Tell
from gridhpo.steering.lifecycle.events import LateFound, Received
from gridhpo.steering.lifecycle.states import GIVEN_UP, AttemptState, OpenPoint, PointState
from gridhpo.steering.schedulers import Decision
from gridhpo.steering.taskfile import TaskSpec

if TYPE_CHECKING:
    from gridhpo.steering.lifecycle.core import TaskLifecycle

log = logging.getLogger(__name__)

#: the reports a late attempt may still leave on its own row
LATE_RESULTS = ("finished", "failed", "metric")


def receive(life: TaskLifecycle, batch: Received, out: list[Effect]) -> None:
    """Apply a round's events; an event already applied changes nothing."""
    heartbeats: dict[int, OpenPoint] = {}
    for ev in batch.events:
        if not life.first_time(ev.event_id):
            log.debug("event %s %s applied already (redelivered): ignored", ev.type, ev.event_id)
            continue
        started = ev.payload
        out.append(PilotSeen(ev.pilot_id, ev.task_id, ev.site,
                             started.host if isinstance(started, StartedData) else None, batch.now))
        op = life.open.get(ev.point_id)
        # a paused point's attempt has ended (the pilot stopped it as decided): a report of it
        # now is a late one, which never changes its point (it would re-queue it, past the depth)
        if op is None or ev.attempt != op.attempt or op.state == PointState.PAUSED:
            if ev.type in LATE_RESULTS:
                life.late[ev.event_id] = ev
                out.append(LookUpLate(ev.task_id, ev.point_id, ev.attempt))
            continue
        if ev.type == "heartbeat":
            if op.state == PointState.RUNNING:
                op.last_seen = max(op.last_seen, batch.now)
                heartbeats[op.id] = op
            continue
        _start(life, op, ev, batch.now, out)
        _report(life, op, ev, out)
    for op in heartbeats.values():
        # only attempts still running at the end of the batch: a point that ended later in the
        # batch (a steering behind, or restarted, gets a heartbeat and the result together)
        # leaves the open set with its state unchanged, and writing "running" now would
        # replace the attempt's end in this batch's writes
        if life.open.get(op.id) is op and op.state == PointState.RUNNING:
            life.write_attempt(op, AttemptState.RUNNING, out)


def _report(life: TaskLifecycle, op: OpenPoint, ev: Event, out: list[Effect]) -> None:
    """An event of the point's current attempt, which has started by now."""
    if ev.type in ("finished", "failed"):
        # counted where the result is applied: a redelivered result finds its point ended
        out.append(PilotDone(ev.pilot_id))
    if ev.type == "metric":
        out.append(_metric_line(op.id, op.attempt, op.attempt_id, ev))
        _judge(life, op, ev, out)
    elif ev.type == "finished":
        _finish(life, op, ev, out)
    elif ev.type == "failed":
        failed = ev.payload
        assert isinstance(failed, FailedData)
        life.fail(op, failed.reason, failed.stderr, ev.time, out)
    elif ev.type == "checkpoint":
        out.append(CheckpointEvent(op.id, op.attempt, op.attempt_id, ev.data, ev.time))
        if life.pbt is not None and isinstance(ev.payload, CheckpointData):
            life.pbt.checkpoint(life, op, ev.payload, ev.time, out)
    elif ev.type == "interrupted":
        stop = ev.payload
        assert isinstance(stop, InterruptedData)
        if stop.decision in CONTROL_ACTIONS:
            _halt(life, op, stop.decision, ev.time, out)
        else:
            life.interrupt(op, AttemptState.INTERRUPTED, stop.reason, ev.time, out,
                           stop.cause if stop.cause in INTERRUPT_CAUSES else "interrupted")


def _start(life: TaskLifecycle, op: OpenPoint, ev: Event, now: float, out: list[Effect]) -> None:
    """Any report of a queued point's attempt starts it (its ``started`` may come later, or never)."""
    if op.state != PointState.QUEUED:
        return
    op.state = PointState.RUNNING
    op.last_seen = now
    op.pilot_id = ev.pilot_id
    # the attempt's row before any write of its fields
    out.append(NewAttempt(op.id, op.attempt, ev.pilot_id, ev.site, ev.time,
                          AttemptFields(AttemptState.RUNNING, op.last_seen)))
    life.write_point(op, PointState.RUNNING, out)


def _finish(life: TaskLifecycle, op: OpenPoint, ev: Event, out: list[Effect]) -> None:
    result = ev.payload
    assert isinstance(result, FinishedData)
    value, message = result.value, result.message
    if life.pbt is not None and life.pbt.finished(life, op, value, ev.time, out):
        return  # a population member's segment ended: its next one is queued or waits for its copy
    goals = life.spec.goals
    outcome = None
    if not goals.plain:
        # the other objectives and the constraints' metrics are the result's other keys
        got = goals.outcome(value, result.metrics)
        if isinstance(got, str):
            life.fail(op, got, None, ev.time, out)
            return
        outcome = got
        if outcome.why_infeasible is not None:
            message = f"{outcome.why_infeasible}; {message}" if message else outcome.why_infeasible
    life.write_point(op, PointState.FINISHED, out, value, message, ev.time, outcome)
    life.write_attempt(op, AttemptState.FINISHED, out, "finished", ev.time, value, message)
    del life.open[op.id]
    life.finished += 1
    if outcome is None:
        life.record_value(op.number, value)
        out.append(Tell(op.number, value))
        return
    if outcome.feasible:  # an infeasible point is never the best
        life.record_value(op.number, value)
    out.append(Tell(op.number, value, outcome.values, outcome.violations))


def _judge(life: TaskLifecycle, op: OpenPoint, ev: Event, out: list[Effect]) -> None:
    """Pass an intermediate result to the task's scheduler; a stop or pause goes to the pilot."""
    spec = life.spec
    metric = ev.payload
    assert isinstance(metric, MetricData)
    report = objective_report(spec, metric.values, metric.step)
    if report is None:
        return
    step, value = report
    op.last_value = value
    if spec.early_stopping.scheduler == "none" or op.stopping or op.pilot_id is None:
        return
    sign = 1.0 if spec.objective.mode == "min" else -1.0
    decision = life.scheduler.report(op.number, step, sign * value)
    if decision is Decision.CONTINUE:
        return
    op.stopping = True
    es = spec.early_stopping
    reason = f"{es.scheduler}: {decision.value} at {es.resource} {step:g}"
    log.info("task %s point %d: %s", life.name, op.number, reason)
    out.append(SendControl(op.pilot_id, ControlMessage(task_id=life.task_id, point_id=op.id, attempt=op.attempt,
                                                       action=decision.value, reason=reason)))


def _halt(life: TaskLifecycle, op: OpenPoint, decision: str, at: float, out: list[Effect]) -> None:
    """The pilot stopped the attempt as decided: the point is stopped for good, or paused."""
    paused = decision != "stop"
    message = f"{'paused' if paused else 'stopped'} by the {life.spec.early_stopping.scheduler} scheduler"
    state = AttemptState.PAUSED if paused else AttemptState.STOPPED
    life.write_attempt(op, state, out, state, at, op.last_value, message)
    op.stopping = False
    if paused:
        op.state = PointState.PAUSED
        life.write_point(op, PointState.PAUSED, out, op.last_value, message)
        return
    life.write_point(op, PointState.STOPPED, out, op.last_value, message, at)
    del life.open[op.id]
    out.append(Tell(op.number, op.last_value))


def late_found(life: TaskLifecycle, ev: LateFound, out: list[Effect]) -> None:
    """A result from an attempt that was given up: kept on its attempt, never on the point."""
    waiting, life.late = life.late, {}
    for e in waiting.values():
        found = ev.found.get((e.task_id, e.point_id, e.attempt))
        if found is None:
            # an unknown attempt, or one of another task (its token does not cover it)
            log.warning("%s event of pilot %s: task %d has no point %d attempt %d; ignored",
                        e.type, e.pilot_id, e.task_id, e.point_id, e.attempt)
            continue
        aid, state = found
        if e.type == "metric":
            out.append(_metric_line(e.point_id, e.attempt, aid, e))
        elif state not in GIVEN_UP:
            # the attempt ended with its own result (a redelivered or repeated report): that result stands
            log.info("%s event for point %d attempt %d, which ended %s: ignored", e.type, e.point_id, e.attempt, state)
        else:
            log.info("late %s event for point %d attempt %d recorded on the attempt only",
                     e.type, e.point_id, e.attempt)
            # a late result is recorded on its attempt but never changes its state or the
            # point: a newer attempt owns the point now
            result = e.payload
            said = result.message if isinstance(result, FinishedData) else (
                result.reason if isinstance(result, FailedData) else None)
            out.append(LateResult(aid, result.value if isinstance(result, FinishedData) else None,
                                  f"late {e.type} after the attempt was given up: {said or ''}".strip()))


def _metric_line(point_id: int, attempt: int, attempt_id: int | None, ev: Event) -> MetricLine:
    metric = ev.payload
    assert isinstance(metric, MetricData)
    return MetricLine(point_id, attempt, attempt_id, metric.seq, metric.step, metric.values, ev.time)


def objective_report(spec: TaskSpec, values: dict[str, Any], step: Any) -> tuple[float, float] | None:
    """(step, value) of a metrics line, the step being the task's resource; None if absent."""
    value = values.get(spec.objective.metric)
    step = values.get(spec.early_stopping.resource, step)
    if not (_finite(value) and _finite(step)):
        return None
    assert value is not None and step is not None
    return float(step), float(value)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
