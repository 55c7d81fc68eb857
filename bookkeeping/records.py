"""Typed writes of the steering's lifecycle, as the bookkeeping takes them.

The steering's core says *what* changed (a point's new state, an attempt's end, a metric
line) in these records; only ``bookkeeping.repository`` turns them into rows, so column
names live in one package. The module imports no database library: the core that builds
these records runs without one. Records are values, never changed once made; they are not
frozen only because a frozen dataclass costs a microsecond more to build, and the steering
builds about ten per point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class PointUpdate:
    """Every field of a point the steering owns, as they are now."""

    point_id: int
    state: str
    attempt: int
    dispatched_at: float
    value: float | None = None
    message: str | None = None
    ended_at: float | None = None
    # multi-objective search or constraints: every objective's and constraint's value by
    # metric, and whether every constraint held (None: a single objective without constraints)
    metric_values: dict[str, float] | None = None
    feasible: bool | None = None


@dataclass(slots=True)
class AttemptFields:
    """Every field of an attempt the steering sets after its start."""

    state: str
    last_seen: float
    ended_at: float | None = None
    end_reason: str | None = None
    value: float | None = None
    message: str | None = None
    stderr_tail: str | None = None


@dataclass(slots=True)
class NewAttempt:
    """An attempt a pilot started: its row is created in the batch."""

    point_id: int
    number: int
    pilot_id: str
    site: str
    started_at: float
    fields: AttemptFields


@dataclass(slots=True)
class AttemptUpdate:
    """The current attempt's fields: by its id, or (id not known yet) by (point, number) when
    its row is created in the same batch."""

    point_id: int
    number: int
    attempt_id: int | None
    fields: AttemptFields


@dataclass(slots=True)
class LateResult:
    """A result for an attempt the steering gave up: kept on the attempt only."""

    attempt_id: int
    value: float | None
    message: str


@dataclass(slots=True)
class MetricLine:
    """One metrics line of an attempt (``attempt_id`` None: the attempt is new in the batch)."""

    point_id: int
    attempt: int
    attempt_id: int | None
    seq: int
    step: float | None
    values: dict[str, Any]
    at: float


@dataclass(slots=True)
class CheckpointEvent:
    """A ``checkpoint`` event's payload, recorded on its attempt."""

    point_id: int
    attempt: int
    attempt_id: int | None
    data: dict[str, Any]
    at: float


@dataclass(slots=True)
class PilotSeen:
    """A pilot reported at ``at`` (the first report creates its row)."""

    pilot_id: str
    task_id: int
    site: str
    host: Any
    at: float


@dataclass(slots=True)
class PilotDone:
    """A pilot's result was applied: one more point done."""

    pilot_id: str


@dataclass(slots=True)
class NewPoint:
    """A suggestion to record as a queued point."""

    task_id: int
    number: int
    params: dict[str, Any]


@dataclass(slots=True)
class SegmentRecord:
    """Every field of one segment of a population member, as it is now (a later record of
    the same segment in a batch replaces the earlier one)."""

    task_id: int
    point_id: int
    member: int
    segment: int
    step: float
    until: float
    config_before: dict[str, Any]
    config_after: dict[str, Any]
    started_at: float
    parent: int | None = None
    parent_checkpoint: str | None = None
    restore: str | None = None
    restored_at: float | None = None
    end_value: float | None = None
    end_checkpoint: str | None = None
    ended_at: float | None = None


Record = (PointUpdate | NewAttempt | AttemptUpdate | LateResult | MetricLine | CheckpointEvent | PilotSeen
          | PilotDone | NewPoint | SegmentRecord)
