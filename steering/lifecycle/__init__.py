"""The point and attempt lifecycle of a task, as a pure state machine.

Contract:

- ``TaskLifecycle.apply(event) -> list[Effect]``: a typed event in (``events.py``: a round's
  pilot events, the clock's checks, the optimiser's suggestions, the ids the bookkeeping
  gave, a revoked token, the task's end), typed effects out (``effects.py``: records to
  write, messages to publish, results to tell the optimiser, attempts to look up). The
  state it keeps (open points, counts, the scheduler's history) is changed as the effects
  assume, so the caller must carry out every effect it gets: records in one transaction,
  messages after that transaction commits.
- No I/O and no clock: every time comes in an event (``now``). Logging is its only output
  besides the effects.
- Idempotent: an event applied twice yields no effect the second time. Pilot events are
  deduplicated by event id (the state alone cannot tell a second metric line from a
  redelivered one); the service's own events by the state (a point already lost, a
  suggestion's number already created, a late result already resolved), and a
  ``ResendCheck`` by its clock reading (the queue length it carries is stale once acted on).
- Invariants: a point ends once; at most the depth asked in ``Suggested`` is in flight;
  an event of an attempt that is not the point's current one never changes the point.

Threading and ownership: one ``TaskLifecycle`` per task, owned by the steering's loop thread
and never shared; it is not thread-safe. The optimiser is not part of it (its driver may run
a worker thread): the core only says what to tell it, and is told what it suggested. The
early-stopping scheduler is: a pure in-memory plugin returning decisions.
"""
from __future__ import annotations

from gridhpo.steering.lifecycle.core import TaskLifecycle
from gridhpo.steering.lifecycle.states import AttemptState, OpenPoint, PointState

__all__ = ["AttemptState", "OpenPoint", "PointState", "TaskLifecycle"]
