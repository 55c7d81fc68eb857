"""The steering service: serves every active task.

A thin shell around each task's lifecycle core (steering/lifecycle): one loop drains a
batch of events, checks their tokens, hands them and the clock to the cores, writes the
records of the effects in one transaction, acknowledges the events, then publishes the
messages. Events are acknowledged only once their effect is committed, so a crash in between
makes the broker redeliver them (AMQP) and applying them twice changes nothing. The shell
owns the I/O the cores never do: the clock, the broker, the bookkeeping, the optimisers.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gridhpo.bookkeeping.records import AttemptUpdate
from gridhpo.bookkeeping.repository import Changes, Repository, TaskRow
from gridhpo.config import redact
from gridhpo.errors import GridHPOError, MessageError, OptimiserError
from gridhpo.protocol import Broker, Event, control_queue, events_queue, parse_event
from gridhpo.protocol.broker import Delivery, Undecodable
from gridhpo.protocol.messages import MAX_MESSAGE_BYTES
from gridhpo.steering.endings import Endings
from gridhpo.steering.exploits import Exploits
from gridhpo.steering.lifecycle.effects import Adopt, LookUpLate, Pin, SendControl, SendPoint, Tell, Unpin
from gridhpo.steering.lifecycle.events import (
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
from gridhpo.steering.lock import SteeringLock
from gridhpo.steering.optimisers import Suggestion
from gridhpo.steering.pilots import PilotDesk
from gridhpo.steering.space import unstorable
from gridhpo.steering.state import TaskState, load_task

log = logging.getLogger(__name__)

Publish = tuple[str, dict[str, Any]]


@dataclass
class Round:
    """What a round's effects amount to: one batch of writes, the messages to publish once it
    is committed, and the late results whose attempts must be looked up."""

    changes: Changes = field(default_factory=Changes)
    publishes: list[Publish] = field(default_factory=list)
    late: dict[int, list[LookUpLate]] = field(default_factory=dict)  # by task id
    new_points: list[tuple[TaskState, int]] = field(default_factory=list)  # in the batch's order


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
        self.exploits = Exploits()  # population-based training's copies of checkpoints

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
        self.exploits.close()

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
        rnd = self.apply_events(events)
        now = time.time()
        for r in self.desk.take_revoked():
            if (task := self.tasks.get(r.task_id)) is not None:
                self._carry(task, Revoked(r.point_id, r.attempt, r.pilot_id, r.reason, now), rnd)
        if time.monotonic() - self._last_check >= self.check_interval:
            self._last_check = time.monotonic()
            self._timeouts(rnd)
        for task in list(self.tasks.values()):
            if self._serves(task) and task.spec.early_stopping.revive:
                self._carry(task, ReviveCheck(now), rnd)
            suggestions = self._ask(task, events_queue(task.id) in backlogged)
            if suggestions:
                self._carry(task, Suggested(tuple(suggestions), task.depth.target), rnd)
        self._commit(rnd)
        for d in deliveries:
            d.ack()
        # rows are committed before messages go out: a message lost here is found and sent again
        self._publish(rnd.publishes)
        if self.on_progress:
            for tid in {e.task_id for e in events}:
                if tid in self.tasks:
                    self.on_progress(self.tasks[tid])
        for task in list(self.tasks.values()):
            self.finish_if_done(task)
        self.round_seconds += 0.2 * (time.monotonic() - started - self.round_seconds)
        return len(deliveries)

    # ------------------------------------------------------------------ effects

    def _carry(self, task: TaskState, event: LifecycleEvent, rnd: Round) -> None:
        """Apply ``event`` to the task's core and carry out its effects into the round: records
        into the batch, messages to publish after it, results to the optimiser now (its next
        suggestion then knows them); a population's copies of checkpoints once the event's other
        effects are in (their answers go back to the core)."""
        adopts: list[Adopt] = []
        for eff in task.core.apply(event):
            if isinstance(eff, SendPoint):
                rnd.publishes.append((eff.queue, eff.message.to_json()))
            elif isinstance(eff, SendControl):
                rnd.publishes.append((control_queue(eff.message.task_id, eff.pilot_id), eff.message.to_json()))
            elif isinstance(eff, Tell):
                task.driver.tell(eff.number, eff.value, eff.values, eff.violations)
            elif isinstance(eff, LookUpLate):
                rnd.late.setdefault(task.id, []).append(eff)
            elif isinstance(eff, Adopt):
                adopts.append(eff)
            elif isinstance(eff, Pin | Unpin):
                self.exploits.pin(task.spec, eff)
            elif not rnd.changes.add(eff):
                assert isinstance(eff, AttemptUpdate)
                # every open point past "queued" has its attempt's row, committed or in this batch:
                # a write with nowhere to go is a bug in the steering, never to pass unnoticed
                log.error("point %d attempt %d: no attempt row to record %s (%s) on; the point's own row is "
                          "still written", eff.point_id, eff.number, eff.fields.state,
                          eff.fields.end_reason or eff.fields.message or "no reason")
        if isinstance(event, Suggested) and event.points:
            rnd.new_points.append((task, len(task.core.pending)))
        for adopt in adopts:
            self._carry(task, self.exploits.adopt(task.spec, adopt), rnd)

    def _commit(self, rnd: Round) -> None:
        """Write the round's batch; the ids the bookkeeping gave go back to the cores, and the
        new points' messages join the round's."""
        if not rnd.changes:
            return
        applied = self.repo.retrying("record events", lambda: self.repo.apply(rnd.changes))
        created = AttemptsCreated(applied.attempt_ids)
        for task in self.tasks.values():
            task.core.apply(created)
        ids = iter(applied.point_ids)
        now = time.time()
        rnd.changes = Changes()
        for task, n in rnd.new_points:
            self._carry(task, PointsCreated(tuple(next(ids) for _ in range(n)), now), rnd)
        if rnd.changes:  # what the new points' ids made (a population's first segments)
            self.repo.retrying("record new segments", lambda: self.repo.apply(rnd.changes))

    def _publish(self, msgs: list[Publish]) -> None:
        try:
            self.broker.publish_many(msgs)
        except GridHPOError as exc:
            # the points are recorded as queued; check_timeouts re-sends them
            log.error("publishing %d points failed, they will be re-sent: %s", len(msgs), exc)

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
                self._load(row)

    def _load(self, row: TaskRow) -> None:
        try:
            # a database restarting is retried: only a task that cannot be served fails
            task = self.tasks[row.id] = self.repo.retrying("load task", lambda: load_task(self.repo, row))
            if task.core.pbt is not None and task.core.pbt.copies:  # a restart: copies never committed go
                self.exploits.discard_orphans(task.spec, row.id, row.name, task.core.pbt.copies)
        except Exception as exc:  # whatever a stored task holds, it fails alone (a missing library...)
            reason = str(exc) if isinstance(exc, GridHPOError) else f"{type(exc).__name__}: {exc}"
            log.error("task %s (%d) cannot be served and is marked failed: %s", row.name, row.id, reason,
                      exc_info=not isinstance(exc, GridHPOError))
            self.repo.retrying("update task", lambda: self.repo.set_task_state(row.id, "failed", reason))

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
        rnd = Round()
        self._carry(task, TokenReplaced(task.queue), rnd)
        self._publish(rnd.publishes)

    def _serves(self, task: TaskState) -> bool:
        return self.dispatch_only is None or task.id in self.dispatch_only

    def _ask(self, task: TaskState, backlogged: bool = False) -> list[Suggestion]:
        """New suggestions to keep the task's depth (at least ``parallel + min_queued``) in
        flight within the budget."""
        if not self._serves(task) or task.too_many_failures:
            return []
        in_flight = task.in_flight  # counted over the open points: once
        task.depth.update(time.monotonic(), task.created - in_flight, self.round_seconds, backlogged)
        want = min(task.depth.target - in_flight, task.spec.budget.max_points - task.created)
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
        return suggestions

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
        rnd = Round()
        self._carry(task, TaskClosed(state, message, time.time()), rnd)
        self.repo.retrying("close task", lambda: self.repo.apply(rnd.changes))
        self._publish(rnd.publishes)
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
                ev = self._event(d)
            except MessageError as exc:
                d.dead_letter(f"malformed event: {exc}")
                deliveries.remove(d)
                continue
            task = self.tasks.get(ev.task_id)
            if task is not None:  # the token whose code it carries (protocol/auth.py)
                ev = replace(ev, auth=self.desk.proven(d.body, task, d.raw))
            refused = self._refusal(ev, now)
            if refused:
                d.dead_letter(f"event of pilot {ev.pilot_id} for task {ev.task_id} refused: {refused}")
                deliveries.remove(d)
                continue
            events.append(ev)
        return events

    @staticmethod
    def _event(d: Delivery) -> Event:
        if d.size > MAX_MESSAGE_BYTES:
            raise MessageError(f"event of {d.size} bytes is over the limit of {MAX_MESSAGE_BYTES}")
        if isinstance(d.body, Undecodable):
            raise MessageError(d.body.reason)
        ev = parse_event(d.body)
        if d.queue != events_queue(ev.task_id):
            raise MessageError(f"an event of task {ev.task_id} in {d.queue}")
        return ev

    def _refusal(self, ev: Event, now: float) -> str | None:
        """Why an event's credentials are refused, or None: the one place they are checked
        (the pilot desk tells its pilot, and re-queues an attempt whose token was good before)."""
        task = self.tasks.get(ev.task_id)
        refused = None if task is None else task.refuses(ev.auth, now)
        if refused and task is not None:
            self.desk.refused(ev, task, refused, now)
        return refused

    def apply_events(self, events: list[Event]) -> Round:
        """Hand each task its events of the round (an event already applied changes nothing);
        a late result's attempt is looked up for all tasks at once."""
        rnd = Round()
        by_task: dict[int, list[Event]] = {}
        for ev in events:
            if ev.task_id in self.tasks:
                by_task.setdefault(ev.task_id, []).append(ev)
            else:
                log.debug("event %s for task %s, which is not active: ignored", ev.type, ev.task_id)
        received = time.time()
        for tid, evs in by_task.items():
            self._carry(self.tasks[tid], Received(tuple(evs), received), rnd)
        if rnd.late:
            keys = [(e.task_id, e.point_id, e.attempt) for looks in rnd.late.values() for e in looks]
            found = self.repo.retrying("read attempt ids", lambda: self.repo.attempt_ids(keys))
            for tid in list(rnd.late):
                self._carry(self.tasks[tid], LateFound(found), rnd)
        return rnd

    # ------------------------------------------------------------------ timeouts

    def check_timeouts(self) -> None:
        """Lost attempts (no heartbeat for ``lost_after``) are re-queued; lost messages re-sent."""
        rnd = Round()
        self._timeouts(rnd)
        self._commit(rnd)
        self._publish(rnd.publishes)

    def _timeouts(self, rnd: Round) -> None:
        now = time.time()
        for task in self.tasks.values():
            self._carry(task, TimeoutCheck(now), rnd)
            if not task.core.has_stale(now, self.requeue_grace):
                continue
            try:
                waiting = self.broker.size(task.queue)
            except GridHPOError as exc:
                log.warning("task %s: cannot read its queue length: %s", task.row.name, exc)
                continue
            self._carry(task, ResendCheck(now, waiting, self.requeue_grace), rnd)
