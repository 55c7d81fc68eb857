"""The steering service: serves every active task.

One loop: receive a batch of events, apply them to the in-memory state and write them in
one transaction, acknowledge them, then top every task up to its points in flight, and
now and then look for lost attempts and lost messages. Events are acknowledged only once
their effect is committed, so a crash in between makes the broker redeliver them (AMQP)
and applying them twice changes nothing.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from gridhpo.bookkeeping.repository import Changes, Repository, TaskRow
from gridhpo.config import redact
from gridhpo.errors import GridHPOError, MessageError, OptimiserError
from gridhpo.protocol import (
    CONTROL_ACTIONS,
    Broker,
    ControlMessage,
    Event,
    PointMessage,
    control_queue,
    events_queue,
    parse_event,
)
from gridhpo.protocol.broker import Delivery, Undecodable
from gridhpo.protocol.messages import MAX_MESSAGE_BYTES
from gridhpo.steering.endings import Endings
from gridhpo.steering.lock import SteeringLock
from gridhpo.steering.optimisers import Suggestion
from gridhpo.steering.pilots import PilotDesk
from gridhpo.steering.schedulers import Decision
from gridhpo.steering.space import unstorable
from gridhpo.steering.state import OpenPoint, TaskState, load_task, objective_report

log = logging.getLogger(__name__)

# why an attempt was interrupted, as pilots report it: its end_reason in the bookkeeping
INTERRUPT_CAUSES = ("walltime", "signal", "site")
# the states of an attempt the steering gave up on: only these take a late result
GIVEN_UP = ("lost", "interrupted", "cancelled")


class Steering:
    def __init__(self, repo: Repository, broker: Broker, *, dispatch_only: set[int] | None = None,
                 requeue_grace: float = 30.0, check_interval: float = 2.0, batch: int = 250,
                 lock: SteeringLock | None = None) -> None:
        self.repo = repo
        self.broker = broker
        self.dispatch_only = dispatch_only
        self.lock = lock
        self.requeue_grace = requeue_grace
        self.check_interval = check_interval
        self.batch = batch
        self.tasks: dict[int, TaskState] = {}
        self._last_refresh = 0.0
        self._last_check = 0.0
        self.round_seconds = 0.0  # a moving average: how long a result waits to be acted on
        self.on_progress: Callable[[TaskState], None] | None = None
        self.endings = Endings(repo, broker)  # the end markers pilots exit on
        self.desk = PilotDesk(broker)  # pilots' hellos answered, refused ones told

    # ------------------------------------------------------------------ main loop

    def run(self, stop: threading.Event | None = None, until_done: set[int] | None = None) -> None:
        """Serve until ``stop`` is set, or until every task in ``until_done`` has ended."""
        stop = stop or threading.Event()
        log.info("steering started (bookkeeping %s)", redact(self.repo.url))
        try:
            self.refresh_tasks(force=True)
            while not stop.is_set():
                self.step()
                if until_done is not None and not any(t in self.tasks for t in until_done):
                    break
        finally:
            self.close()
        log.info("steering stopped")

    def close(self) -> None:
        """Stop the optimisers' worker threads (the tasks stay active for the next steering)."""
        for task in self.tasks.values():
            task.driver.close()

    def step(self) -> int:
        """One round, written in one transaction: the events received, then the new points
        that keep every task's pilots busy. Returns how many events it applied."""
        started = time.monotonic()
        self.refresh_tasks()
        self.endings.sweep(set(self.tasks))
        busy = any(t.open for t in self.tasks.values())
        # each task's share of the round: a flood of one task's events waits in its own queue
        # (the events of tasks it does not dispatch are applied too, as their heartbeats count)
        deliveries, backlogged = self.broker.drain_fair([events_queue(t) for t in self.tasks], max_messages=self.batch,
                                                        timeout=0.02 if busy else 0.2)
        deliveries, hellos = self.desk.split(deliveries)
        if hellos:
            self.refresh_tasks(force=True)  # tokens as they are now: a revoke a moment ago counts
            self.desk.answer(hellos, self.tasks)
        events = self._parse(deliveries)
        changes, publishes = self.apply_events(events)
        self._requeue_revoked(changes, publishes)
        now = time.monotonic()
        if now - self._last_check >= self.check_interval:
            self._last_check = now
            publishes += self._timeouts(changes)
        for task in list(self.tasks.values()):
            self._revive(task, changes, publishes)
        asked = [(task, self._ask(task, events_queue(task.id) in backlogged)) for task in list(self.tasks.values())]
        for task, suggestions in asked:
            for s in suggestions:
                changes.new_points.append({"task_id": task.id, "number": s.number, "params": s.params})
        if changes:
            self._commit(changes)
        for d in deliveries:
            d.ack()
        publishes += self._register_new_points(changes, asked)
        # rows are committed before messages go out: a message lost here is found and sent again
        self._publish(publishes)
        if self.on_progress:
            for tid in {e.task_id for e in events}:
                if tid in self.tasks:
                    self.on_progress(self.tasks[tid])
        for task in list(self.tasks.values()):
            self.finish_if_done(task)
        self.round_seconds += 0.2 * (time.monotonic() - started - self.round_seconds)
        return len(deliveries)

    def _commit(self, changes: Changes) -> None:
        applied = self.repo.retrying("record events", lambda: self.repo.apply(changes))
        for task in self.tasks.values():
            for op in task.open.values():
                if op.attempt_id is None and (op.id, op.attempt) in applied.attempt_ids:
                    op.attempt_id = applied.attempt_ids[(op.id, op.attempt)]
        changes.new_point_ids = applied.point_ids

    # ------------------------------------------------------------------ tasks

    def refresh_tasks(self, force: bool = False) -> None:
        """Pick up newly submitted tasks and drop cancelled ones (the CLI writes those)."""
        now = time.monotonic()
        if not force and now - self._last_refresh < 1.0:
            return
        self._last_refresh = now
        if self.lock is not None:
            self.lock.verify()  # two steerings would hand out and count points twice
        active = {t.id: t for t in self.repo.retrying("list tasks", lambda: self.repo.tasks("active"))}
        for tid in list(self.tasks):
            if tid not in active:
                self._close_task(self.tasks[tid], None, "task is no longer active")
        for tid, row in active.items():
            task = self.tasks.get(tid)
            if task is not None and (row.token, row.token_expires_at) != (task.row.token, task.row.token_expires_at):
                self._new_token(task, row)
            if tid not in self.tasks:
                try:
                    # a database restarting is retried: only a task that cannot be served fails
                    self.tasks[tid] = self.repo.retrying("load task", lambda row=row: load_task(self.repo, row))
                except Exception as exc:  # whatever a stored task holds, it fails alone (a missing library...)
                    reason = str(exc) if isinstance(exc, GridHPOError) else f"{type(exc).__name__}: {exc}"
                    log.error("task %s (%d) cannot be served and is marked failed: %s", row.name, tid, reason,
                              exc_info=not isinstance(exc, GridHPOError))
                    self.repo.retrying("update task", lambda tid=tid, reason=reason: self.repo.set_task_state(
                        tid, "failed", reason))

    def _new_token(self, task: TaskState, row: TaskRow) -> None:
        """The task's token was replaced (or given an expiry): its queued points move to the
        queue of the new token, where the old token's pilots cannot find them."""
        old = task.queue
        self.desk.token_replaced(task.id, task.row.token, row.token)
        task.row = row
        if task.queue == old:
            return
        log.info("task %s: token replaced; its queued points move to the new token's queue", row.name)
        try:
            self.broker.purge(old)
        except GridHPOError as exc:
            log.warning("task %s: emptying the old token's queue failed: %s", row.name, exc)
        self._publish([(task.queue, self.point_message(task, op)) for op in task.open.values() if op.state == "queued"])

    def _serves(self, task: TaskState) -> bool:
        return self.dispatch_only is None or task.id in self.dispatch_only

    def _ask(self, task: TaskState, backlogged: bool = False) -> list[Suggestion]:
        """New suggestions to keep the task's depth (at least ``parallel + min_queued``) in
        flight within the budget."""
        if not self._serves(task) or task.too_many_failures:
            return []
        in_flight = task.in_flight  # counted over the open points: once
        task.depth.update(time.monotonic(), task.created - in_flight, self.round_seconds, backlogged)
        b = task.spec.budget
        want = min(task.depth.target - in_flight, b.max_points - task.created)
        if want <= 0:
            return []
        try:
            suggestions = task.driver.take(want)
        except OptimiserError as exc:
            task.error = str(exc)
            return []
        for s in suggestions:
            # one bad point would fail the whole round's transaction, and every round after it
            problem = unstorable(s.params)
            if problem is not None:
                task.error = (f"optimiser {task.spec.optimiser.backend} proposed point {s.number}, which the "
                              f"bookkeeping cannot store: {problem}")
                return []
        task.created += len(suggestions)
        return suggestions

    def _register_new_points(self, changes: Changes,
                             asked: list[tuple[TaskState, list[Suggestion]]]) -> list[tuple[str, dict[str, Any]]]:
        ids = iter(changes.new_point_ids)
        now = time.time()
        msgs = []
        for task, suggestions in asked:
            for s in suggestions:
                op = OpenPoint(next(ids), s.number, s.params, "queued", 1, now)
                task.open[op.id] = op
                msgs.append((task.queue, self.point_message(task, op)))
        return msgs

    @staticmethod
    def point_message(task: TaskState, op: OpenPoint) -> dict[str, Any]:
        if task.wire is None:
            es = task.spec.early_stopping
            task.wire = {"evaluation": asdict(task.spec.evaluation),
                         "objective": {"metric": task.spec.objective.metric, "mode": task.spec.objective.mode},
                         "budget": {} if es.scheduler == "none" else {
                             "resource": es.resource, "min_resource": es.min_resource,
                             "max_resource": es.max_resource, "scheduler": es.scheduler}}
        msg = PointMessage(task_id=task.id, task_name=task.row.name, point_id=op.id, number=op.number,
                           attempt=op.attempt, params=op.params, **task.wire)
        return msg.__dict__.copy()

    def _publish(self, msgs: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            self.broker.publish_many(msgs)
        except GridHPOError as exc:
            # the points are recorded as queued; check_timeouts re-sends them
            log.error("publishing %d points failed, they will be re-sent: %s", len(msgs), exc)

    def finish_if_done(self, task: TaskState) -> None:
        if task.error:
            self._close_task(task, "failed", task.error)
        elif task.too_many_failures:
            self._close_task(task, "failed", f"{task.failed} points failed (budget.max_failures "
                                              f"{task.spec.budget.max_failures})")
        elif task.done:
            self._close_task(task, "finished", None)

    def _close_task(self, task: TaskState, state: str | None, message: str | None) -> None:
        """End a task: its open points are cancelled, the pilots running them told to stop
        (a cancelled campaign frees its GPUs), and its queues emptied."""
        changes = Changes()
        now = time.time()
        self._publish([(control_queue(task.id, op.pilot_id), ControlMessage(
            task_id=task.id, point_id=op.id, attempt=op.attempt, action="stop",
            reason=f"task ended: {message or state}").to_json())
            for op in task.open.values() if op.state == "running" and op.pilot_id])
        for op in task.open.values():
            if op.state == "paused":
                # never revived: it ends as stopped, with the value it had reached
                self._point(changes, op, "stopped", op.last_value, "paused, not revived before the task ended", now)
                continue
            self._point(changes, op, "cancelled", message=message or "task ended", ended_at=now)
            if op.attempt_id is not None:
                self._attempt(changes, op, "cancelled", "task ended", now)
        self.repo.retrying("close task", lambda: self.repo.apply(changes))
        if state is not None:
            self.repo.retrying("update task", lambda: self.repo.set_task_state(task.id, state, message))
        try:
            self.broker.purge(task.queue)
            self.broker.stop_consuming(events_queue(task.id))
            self.broker.purge(events_queue(task.id))  # late reports of pilots not yet stopped
        except GridHPOError as exc:
            log.warning("task %s: emptying its queues failed: %s", task.row.name, exc)
        self.endings.mark(task.id, task.queue, state, message)  # after the purge: the queue's last message
        log.info("task %s (%d) %s: %d finished, %d failed, best %s", task.row.name, task.id,
                 state or "closed", task.finished, task.failed, task.best_value)
        task.open.clear()
        task.driver.close()
        del self.tasks[task.id]
        if self.on_progress:
            self.on_progress(task)

    # ------------------------------------------------------------------ events

    def _parse(self, deliveries: list[Delivery]) -> list[Event]:
        """Valid events with the right token; any other message goes to the dead-letter queue
        with its reason."""
        events: list[Event] = []
        now = time.time()
        for d in list(deliveries):
            try:
                if d.size > MAX_MESSAGE_BYTES:
                    raise MessageError(f"event of {d.size} bytes is over the limit of {MAX_MESSAGE_BYTES}")
                if isinstance(d.body, Undecodable):
                    raise MessageError(d.body.reason)
                ev = parse_event(d.body)
                if d.queue != events_queue(ev.task_id):
                    raise MessageError(f"an event of task {ev.task_id} in {d.queue}")
            except MessageError as exc:
                d.dead_letter(f"malformed event: {exc}")
                deliveries.remove(d)
                continue
            task = self.tasks.get(ev.task_id)
            if task is not None:  # the token whose code it carries (protocol/auth.py)
                ev = replace(ev, auth=self.desk.proven(d.body, task))
            refused = None if task is None else task.refuses(ev.auth, now)
            if refused:
                assert task is not None
                self.desk.refused(ev, task, refused, now)
                d.dead_letter(f"event of pilot {ev.pilot_id} for task {ev.task_id} refused: {refused}")
                deliveries.remove(d)
                continue
            events.append(ev)
        return events

    def apply_events(self, events: list[Event]) -> tuple[Changes, list[tuple[str, dict[str, Any]]]]:
        """Turn events into one batch of writes; an event already applied changes nothing.

        Liveness is judged by the steering's clock, when an event is received, never by the
        event's own time: a pilot's clock may run a minute behind (its live points would look
        silent) or an hour ahead (its dead ones would look alive)."""
        received = time.time()
        changes = Changes()
        publishes: list[tuple[str, dict[str, Any]]] = []
        late: list[Event] = []
        heartbeats: dict[int, tuple[TaskState, OpenPoint]] = {}
        for ev in events:
            task = self.tasks.get(ev.task_id)
            if task is None:
                log.debug("event %s for task %s, which is not active: ignored", ev.type, ev.task_id)
                continue
            if not task.first_time(ev.event_id):
                log.debug("event %s %s applied already (redelivered): ignored", ev.type, ev.event_id)
                continue
            self._seen_pilot(changes, ev, received)
            op = task.open.get(ev.point_id)
            if op is None or ev.attempt != op.attempt:
                late.append(ev)
                continue
            if ev.type in ("finished", "failed"):
                # counted where the result is applied: a redelivered result finds its point ended
                changes.pilot_done[ev.pilot_id] = changes.pilot_done.get(ev.pilot_id, 0) + 1
            if ev.type == "started":
                self._start(changes, task, op, ev)
            elif ev.type == "heartbeat":
                if op.state == "running":
                    op.last_seen = max(op.last_seen, received)
                    heartbeats[op.id] = task, op
            elif ev.type == "metric":
                self._start(changes, task, op, ev)
                changes.metrics.append(self._metric_row(op.id, op.attempt_id, (op.id, op.attempt), ev))
                self._judge(task, op, ev, publishes)
            elif ev.type == "finished":
                self._start(changes, task, op, ev)
                self._finish(changes, task, op, ev)
            elif ev.type == "failed":
                self._start(changes, task, op, ev)
                self._fail(changes, task, op, ev.data.get("reason") or "evaluation failed",
                           ev.data.get("stderr"), ev.time)
            elif ev.type == "checkpoint":
                self._start(changes, task, op, ev)
                changes.add_checkpoint(op.id, op.attempt_id, op.attempt, ev.data, ev.time)
            elif ev.type == "interrupted":
                self._start(changes, task, op, ev)
                if ev.data.get("decision") in CONTROL_ACTIONS:
                    self._halt(changes, task, op, str(ev.data["decision"]), ev.time)
                else:
                    cause = ev.data.get("cause")
                    self._interrupt(changes, task, op, "interrupted", ev.data.get("reason") or "interrupted",
                                    ev.time, publishes, cause if cause in INTERRUPT_CAUSES else "interrupted")
        for task, op in heartbeats.values():
            # only attempts still running at the end of the batch: a point that ended later in
            # the batch (a steering behind, or restarted, gets a heartbeat and the result
            # together) leaves the open set with its state unchanged, and writing "running" now
            # would replace the attempt's end in this batch's writes
            if task.open.get(op.id) is op and op.state == "running":
                self._attempt(changes, op, "running")
        if late:
            self._record_late(changes, late)
        return changes, publishes

    def _requeue_revoked(self, changes: Changes, publishes: list[tuple[str, dict[str, Any]]]) -> None:
        """Running attempts whose pilot's token was revoked or expired go back to the queue now:
        that pilot's results would be refused, and it exits (steering/pilots.py)."""
        now = time.time()
        for r in self.desk.take_revoked():
            task = self.tasks.get(r.task_id)
            op = task.open.get(r.point_id) if task is not None else None
            if task is None or op is None or (op.state, op.attempt, op.pilot_id) != ("running", r.attempt, r.pilot_id):
                continue
            self._interrupt(changes, task, op, "interrupted", f"its pilot's token was refused: {r.reason}", now,
                            publishes, "revoked")

    def _seen_pilot(self, changes: Changes, ev: Event, received: float) -> None:
        p = changes.pilots.get(ev.pilot_id)
        if p is None:
            changes.pilots[ev.pilot_id] = {"id": ev.pilot_id, "task_id": ev.task_id, "site": ev.site,
                                           "host": ev.data.get("host"), "first_seen": received, "last_seen": received}
        else:
            p["last_seen"] = max(p["last_seen"], received)

    def _start(self, changes: Changes, task: TaskState, op: OpenPoint, ev: Event) -> None:
        if op.state != "queued":
            return
        op.state = "running"
        op.last_seen = time.time()
        op.pilot_id = ev.pilot_id
        changes.new_attempts[(op.id, op.attempt)] = {
            "point_id": op.id, "number": op.attempt, "pilot_id": ev.pilot_id, "site": ev.site,
            "started_at": ev.time, **self._attempt_fields(op, "running"),
        }
        self._point(changes, op, "running")

    def _finish(self, changes: Changes, task: TaskState, op: OpenPoint, ev: Event) -> None:
        value = float(ev.data["value"])
        message = ev.data.get("message") or None
        self._point(changes, op, "finished", value, message, ev.time)
        self._attempt(changes, op, "finished", "finished", ev.time, value, message)
        del task.open[op.id]
        task.finished += 1
        task.record_value(op.number, value)
        task.driver.tell(op.number, value)

    def _fail(self, changes: Changes, task: TaskState, op: OpenPoint, reason: str, stderr: str | None,
              at: float, attempt_state: str = "failed", end_reason: str | None = None) -> None:
        self._point(changes, op, "failed", message=reason, ended_at=at)
        self._attempt(changes, op, attempt_state, end_reason or attempt_state, at, None, reason, stderr)
        del task.open[op.id]
        task.failed += 1
        fv = task.spec.objective.failure_value
        if fv is not None:
            task.driver.tell(op.number, fv)
        else:
            task.driver.tell(op.number, None)

    def _interrupt(self, changes: Changes, task: TaskState, op: OpenPoint, state: str, reason: str, at: float,
                   publishes: list[tuple[str, dict[str, Any]]], end_reason: str | None = None) -> None:
        """End the current attempt; the point goes back to the queue while attempts remain."""
        max_attempts = task.spec.budget.max_attempts
        if op.attempt >= max_attempts:
            self._fail(changes, task, op, f"{reason}; gave up after {op.attempt} attempts (budget.max_attempts)",
                       None, at, attempt_state=state, end_reason=end_reason or state)
            return
        self._attempt(changes, op, state, end_reason or state, at, None, reason)
        log.info("task %s point %d attempt %d %s (%s): re-queued", task.row.name, op.number, op.attempt, state, reason)
        self._requeue(changes, task, op, reason, publishes)

    def _requeue(self, changes: Changes, task: TaskState, op: OpenPoint, reason: str,
                 publishes: list[tuple[str, dict[str, Any]]]) -> None:
        """The point's next attempt goes to the queue (its pilot restores the last checkpoint)."""
        op.attempt += 1
        op.state = "queued"
        op.attempt_id = None
        op.pilot_id = None
        op.stopping = False
        op.dispatched_at = time.time()
        self._point(changes, op, "queued", message=reason)
        publishes.append((task.queue, self.point_message(task, op)))

    # ------------------------------------------------------------------ early stopping

    def _judge(self, task: TaskState, op: OpenPoint, ev: Event, publishes: list[tuple[str, dict[str, Any]]]) -> None:
        """Pass an intermediate result to the task's scheduler; a stop or pause goes to the pilot."""
        report = objective_report(task.spec, ev.data["values"], ev.data.get("step"))
        if report is None:
            return
        step, value = report
        op.last_value = value
        if task.spec.early_stopping.scheduler == "none" or op.stopping or op.pilot_id is None:
            return
        sign = 1.0 if task.spec.objective.mode == "min" else -1.0
        decision = task.scheduler.report(op.number, step, sign * value)
        if decision is Decision.CONTINUE:
            return
        op.stopping = True
        es = task.spec.early_stopping
        reason = f"{es.scheduler}: {decision.value} at {es.resource} {step:g}"
        log.info("task %s point %d: %s", task.row.name, op.number, reason)
        publishes.append((control_queue(task.id, op.pilot_id), ControlMessage(
            task_id=task.id, point_id=op.id, attempt=op.attempt, action=decision.value, reason=reason).to_json()))

    def _halt(self, changes: Changes, task: TaskState, op: OpenPoint, decision: str, at: float) -> None:
        """The pilot stopped the attempt as decided: the point is stopped for good, or paused."""
        state = "stopped" if decision == "stop" else "paused"
        message = f"{state} by the {task.spec.early_stopping.scheduler} scheduler"
        self._attempt(changes, op, state, state, at, op.last_value, message)
        op.stopping = False
        if state == "paused":
            op.state = "paused"
            self._point(changes, op, "paused", op.last_value, message)
            return
        self._point(changes, op, "stopped", op.last_value, message, at)
        del task.open[op.id]
        task.driver.tell(op.number, op.last_value)

    def _revive(self, task: TaskState, changes: Changes, publishes: list[tuple[str, dict[str, Any]]]) -> None:
        """Stop-and-go: paused points the scheduler now judges worth it take free slots first."""
        if not self._serves(task) or not task.spec.early_stopping.revive:
            return
        free = task.spec.budget.parallel - task.in_flight
        paused = {op.number: op for op in task.open.values() if op.state == "paused"}
        if free <= 0 or not paused:
            return
        for number in task.scheduler.revive(sorted(paused))[:free]:
            op = paused[number]
            log.info("task %s point %d: revived from its checkpoint", task.row.name, number)
            self._requeue(changes, task, op, "revived", publishes)

    def _record_late(self, changes: Changes, late: list[Event]) -> None:
        """A result from an attempt that was given up: kept on its attempt, never on the point."""
        results = [e for e in late if e.type in ("finished", "failed", "metric")]
        if not results:
            return
        ids = self.repo.retrying("read attempt ids", lambda: self.repo.attempt_ids(
            [(e.task_id, e.point_id, e.attempt) for e in results]))
        for ev in results:
            found = ids.get((ev.task_id, ev.point_id, ev.attempt))
            if found is None:
                # an unknown attempt, or one of another task (its token does not cover it)
                log.warning("%s event of pilot %s: task %d has no point %d attempt %d; ignored",
                            ev.type, ev.pilot_id, ev.task_id, ev.point_id, ev.attempt)
                continue
            aid, state = found
            if ev.type != "metric" and state not in GIVEN_UP:
                # the attempt ended with its own result (a redelivered or repeated report):
                # that result stands
                log.info("%s event for point %d attempt %d, which ended %s: ignored",
                         ev.type, ev.point_id, ev.attempt, state)
                continue
            if ev.type == "metric":
                changes.metrics.append(self._metric_row(ev.point_id, aid, None, ev))
            else:
                log.info("late %s event for point %d attempt %d recorded on the attempt only",
                         ev.type, ev.point_id, ev.attempt)
                # a late result is recorded on its attempt but never changes its state
                # or the point: a newer attempt owns the point now
                changes.late_attempts.append({
                    "b_id": aid, "value": ev.data.get("value") if ev.type == "finished" else None,
                    "message": f"late {ev.type} after the attempt was given up: "
                               f"{ev.data.get('message') or ev.data.get('reason') or ''}".strip(),
                })

    @staticmethod
    def _metric_row(point_id: int, attempt_id: int | None, key: tuple[int, int] | None, ev: Event) -> dict[str, Any]:
        step = ev.data.get("step")
        return {"attempt_id": attempt_id, "_key": key, "point_id": point_id, "seq": int(ev.data["seq"]),
                "step": float(step) if isinstance(step, (int, float)) and math.isfinite(step) else None,
                "values": dict(ev.data["values"]), "at": ev.time}

    @staticmethod
    def _point(changes: Changes, op: OpenPoint, state: str, value: float | None = None,
               message: str | None = None, ended_at: float | None = None) -> None:
        changes.point_updates[op.id] = {
            "b_id": op.id, "state": state, "value": value, "attempt": op.attempt, "message": message,
            "dispatched_at": op.dispatched_at, "ended_at": ended_at,
        }

    @staticmethod
    def _attempt_fields(op: OpenPoint, state: str, end_reason: str | None = None, ended_at: float | None = None,
                        value: float | None = None, message: str | None = None,
                        stderr: str | None = None) -> dict[str, Any]:
        return {"state": state, "last_seen": op.last_seen, "ended_at": ended_at, "end_reason": end_reason,
                "value": value, "message": message, "stderr_tail": stderr}

    def _attempt(self, changes: Changes, op: OpenPoint, state: str, end_reason: str | None = None,
                 ended_at: float | None = None, value: float | None = None, message: str | None = None,
                 stderr: str | None = None) -> None:
        """Set the current attempt's fields, whether its row exists or is new in this batch."""
        fields = self._attempt_fields(op, state, end_reason, ended_at, value, message, stderr)
        if op.attempt_id is not None:
            changes.attempt_updates[op.attempt_id] = {"b_id": op.attempt_id, **fields}
        elif (op.id, op.attempt) in changes.new_attempts:
            changes.new_attempts[(op.id, op.attempt)].update(fields)
        else:
            # every open point past "queued" has its attempt's row, committed or in this batch:
            # a write with nowhere to go is a bug in the steering, never to pass unnoticed
            log.error("point %d attempt %d: no attempt row to record %s (%s) on; the point's own row is "
                      "still written", op.id, op.attempt, state, end_reason or message or "no reason")

    # ------------------------------------------------------------------ timeouts

    def check_timeouts(self) -> None:
        """Lost attempts (no heartbeat for ``lost_after``) are re-queued; lost messages re-sent."""
        changes = Changes()
        publishes = self._timeouts(changes)
        if changes:
            self._commit(changes)
        self._publish(publishes)

    def _timeouts(self, changes: Changes) -> list[tuple[str, dict[str, Any]]]:
        now = time.time()
        publishes: list[tuple[str, dict[str, Any]]] = []
        for task in self.tasks.values():
            lost_after = task.spec.evaluation.lost_after
            for op in list(task.open.values()):
                if op.state == "running" and now - op.last_seen > lost_after:
                    self._interrupt(changes, task, op, "lost",
                                    f"no heartbeat for {now - op.last_seen:.0f}s (evaluation.lost_after "
                                    f"{lost_after:g}s)", now, publishes)
            publishes.extend(self._resend_lost_messages(task, now, changes))
        return publishes

    def _resend_lost_messages(self, task: TaskState, now: float, changes: Changes) -> list[tuple[str, dict[str, Any]]]:
        """Queued points whose message is no longer in the queue are sent again.

        A queue is first in, first out, so when it holds fewer messages than the task has
        queued points, the missing ones are the oldest: a pilot took them and died before it
        reported the start (a virtual transport cannot give them back). Only points queued
        longer than ``requeue_grace`` qualify, so a message in a pilot's hands is left alone.
        A point sent twice is harmless: its events are applied once.
        """
        queued = sorted((op for op in task.open.values() if op.state == "queued"), key=lambda o: o.dispatched_at)
        stale = [op for op in queued if now - op.dispatched_at > self.requeue_grace]
        if not stale:
            return []
        try:
            waiting = self.broker.size(task.queue)
        except GridHPOError as exc:
            log.warning("task %s: cannot read its queue length: %s", task.row.name, exc)
            return []
        missing = min(len(queued) - waiting, len(stale))
        out = []
        for op in stale[:max(missing, 0)]:
            log.warning("task %s point %d attempt %d: its message was lost; sent again",
                        task.row.name, op.number, op.attempt)
            op.dispatched_at = now
            self._point(changes, op, "queued")
            out.append((task.queue, self.point_message(task, op)))
        return out
