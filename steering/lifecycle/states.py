"""The states of a point and of its attempts, and a point the steering holds open."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class PointState(enum.StrEnum):
    """A point: queued (its message waits in the queue), running, paused (early stopping's
    stop-and-go, holding no slot) or one of the ends."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"  # by the early-stopping scheduler, with the value it reached
    CANCELLED = "cancelled"  # its task ended first


class AttemptState(enum.StrEnum):
    """One run of a point by one pilot."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    LOST = "lost"  # no heartbeat for evaluation.lost_after
    INTERRUPTED = "interrupted"  # walltime, a signal, the site, a revoked token
    CANCELLED = "cancelled"
    STOPPED = "stopped"
    PAUSED = "paused"


OPEN_POINT_STATES = frozenset({PointState.QUEUED, PointState.RUNNING, PointState.PAUSED})
#: the attempts the steering gave up on: only these take a late result
GIVEN_UP = frozenset({AttemptState.LOST, AttemptState.INTERRUPTED, AttemptState.CANCELLED})


@dataclass
class OpenPoint:
    """A point not yet ended: queued, running or paused, with its current attempt."""

    id: int
    number: int
    params: dict[str, Any]
    state: PointState
    attempt: int
    dispatched_at: float
    attempt_id: int | None = None  # None until the row of the attempt is committed
    last_seen: float = 0.0
    pilot_id: str | None = None
    last_value: float | None = None  # the objective last reported in metrics.jsonl
    stopping: bool = False  # a stop or pause was sent to its pilot
    # population-based training: where the current segment ends, the one checkpoint it must
    # restore (an exploit's copy, until restored), and the first attempt of the segment
    until: int | None = None
    restore: str | None = None
    segment_attempt: int = 1

    def next_attempt(self, at: float) -> None:
        """The point's next attempt, queued at ``at`` and not yet taken by any pilot."""
        self.attempt += 1
        self.state = PointState.QUEUED
        self.attempt_id = None
        self.pilot_id = None
        self.stopping = False
        self.dispatched_at = at
