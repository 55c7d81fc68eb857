"""The end of a task, as its pilots learn it: a ``TaskEnd`` marker left in its points queue.

When a task ends, the steering empties its points queue and then publishes the marker, so it
is the queue's last message; a pilot that takes it gives it back (every pilot sees it, also
one started later) and exits. The marker must survive what can happen around it: the steering
dying between ending the task and publishing, ``gridhpo cancel`` while no steering runs, a
pilot of the embedded queue killed while holding the marker, a token replaced after the end.
So every ``SWEEP_INTERVAL`` (and at the steering's start) the tasks that ended within
``HORIZON`` are checked: one whose points are still open in the bookkeeping ended while no
steering served it, and is closed now (points cancelled, their pilots told to stop, its queue
emptied); one whose queue is empty gets its marker again. A duplicate marker is harmless.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from gridhpo.bookkeeping.records import AttemptFields, AttemptUpdate, PointUpdate
from gridhpo.bookkeeping.repository import Changes, Repository, TaskRow
from gridhpo.errors import GridHPOError
from gridhpo.protocol import Broker, ControlMessage, control_queue, points_queue
from gridhpo.protocol.messages import TASK_END_STATES, TaskEnd
from gridhpo.steering.lifecycle.states import OPEN_POINT_STATES, AttemptState, PointState

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 60.0
HORIZON = 7 * 86400.0  # pilots of a task that ended longer ago are not expected any more


class Endings:
    def __init__(self, repo: Repository, broker: Broker, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.repo = repo
        self.broker = broker
        self.sweep_interval = sweep_interval
        self._last_sweep = -float("inf")

    def mark(self, task_id: int, queue: str, state: str | None, reason: str | None) -> None:
        """Publish the end marker on ``queue``, which the caller has just emptied."""
        if state is None:  # ended by `gridhpo cancel`: the bookkeeping says how and why
            try:
                row = self.repo.retrying("read task", lambda: self.repo.task(task_id))
                state, reason = row.state, row.message or reason
            except GridHPOError as exc:
                log.warning("task %d: cannot read its state (%s)", task_id, exc)
        end = TaskEnd(task_id=task_id, state=state if state in TASK_END_STATES else "ended",
                      reason=(reason or "")[:1000])
        try:
            self.broker.publish(queue, end.to_json())
        except GridHPOError as exc:
            log.warning("task %d: publishing its end marker failed (the next sweep does it): %s", task_id, exc)

    def sweep(self, serving: set[int], force: bool = False) -> None:
        """Check the tasks that ended recently (see the module's docstring); ``serving`` are the
        tasks the steering holds, which it closes itself."""
        now = time.monotonic()
        if not force and now - self._last_sweep < self.sweep_interval:
            return
        self._last_sweep = now
        since = time.time() - HORIZON
        try:
            rows = self.repo.retrying("list tasks", self.repo.tasks)
        except GridHPOError as exc:
            log.warning("cannot list the tasks to check their end markers: %s", exc)
            return
        for row in rows:
            if row.state == "active" or row.id in serving or (row.ended_at or 0.0) < since:
                continue
            try:
                self._check(row)
            except GridHPOError as exc:
                log.warning("task %s (%d): checking its end marker failed: %s", row.name, row.id, exc)

    def _check(self, row: TaskRow) -> None:
        queue = points_queue(row.id, row.token)
        states = sorted(s.value for s in OPEN_POINT_STATES)
        open_points = self.repo.retrying("read points", lambda: self.repo.points(row.id, states))
        if open_points:
            log.info("task %s (%d) ended while no steering served it: closing its %d open points",
                     row.name, row.id, len(open_points))
            self._close_points(row, open_points)
            self.broker.purge(queue)
        elif self.broker.size(queue) > 0:
            return  # its marker (nothing else is published to an ended task's queue)
        self.mark(row.id, queue, row.state, row.message)

    def _close_points(self, row: TaskRow, points: list[Any]) -> None:
        """What the steering does to a task's open points when it ends: cancelled (a paused one
        stopped with the value it reached), running attempts ended, their pilots told to stop."""
        now = time.time()
        changes = Changes()
        for p in points:
            paused = p.state == PointState.PAUSED
            changes.add(PointUpdate(
                p.id, PointState.STOPPED if paused else PointState.CANCELLED, p.attempt, p.dispatched_at,
                p.value if paused else None, "paused, not revived before the task ended" if paused else "task ended",
                now))
        current = {p.id: p.attempt for p in points if p.state == PointState.RUNNING}
        stops = []
        for a in self.repo.retrying("read attempts", lambda: self.repo.attempts(point_ids=list(current))):
            if current.get(a.point_id) != a.number or a.state != AttemptState.RUNNING:
                continue
            changes.add(AttemptUpdate(a.point_id, a.number, a.id,
                                      AttemptFields(AttemptState.CANCELLED, a.last_seen, now, "task ended")))
            if a.pilot_id:
                stops.append((control_queue(row.id, a.pilot_id), ControlMessage(
                    task_id=row.id, point_id=a.point_id, attempt=a.number, action="stop",
                    reason=f"task ended: {row.message or row.state}").to_json()))
        self.repo.retrying("close task", lambda: self.repo.apply(changes))
        self.broker.publish_many(stops)
