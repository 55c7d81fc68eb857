"""What the lifecycle core is told: typed inputs, each carrying the steering's clock.

Pilot events arrive as ``gridhpo.protocol.Event`` (parsed and their token checked by the
service) in a ``Received`` batch; the others are the service's own observations: the clock
(timeouts, lost messages), the optimiser's suggestions, the ids the bookkeeping gave, a
revoked token, the end of the task.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gridhpo.protocol import Event
from gridhpo.steering.optimisers import Suggestion


@dataclass(frozen=True)
class Received:
    """A round's events of one task, in order; ``now``: when the steering received them
    (liveness is judged by its clock, never by the pilot's)."""

    events: tuple[Event, ...]
    now: float


@dataclass(frozen=True)
class LateFound:
    """The bookkeeping's (attempt id, state) of the attempts late results were for, by
    (task_id, point_id, attempt); a key missing: no such attempt of this task."""

    found: Mapping[tuple[int, int, int], tuple[int, str]]


@dataclass(frozen=True)
class Revoked:
    """A running attempt's pilot presented a token that is no longer good."""

    point_id: int
    attempt: int
    pilot_id: str
    reason: str
    now: float


@dataclass(frozen=True)
class TimeoutCheck:
    """Running attempts silent for ``evaluation.lost_after`` at ``now`` are lost."""

    now: float


@dataclass(frozen=True)
class ResendCheck:
    """The task's points queue holds ``waiting`` messages: queued points missing from it for
    longer than ``grace`` seconds are sent again."""

    now: float
    waiting: int
    grace: float


@dataclass(frozen=True)
class ReviveCheck:
    """Paused points the scheduler now judges worth it take the free slots."""

    now: float


@dataclass(frozen=True)
class Suggested:
    """The optimiser's new suggestions, to keep at most ``depth`` points in flight."""

    points: tuple[Suggestion, ...]
    depth: int


@dataclass(frozen=True)
class PointsCreated:
    """The ids the bookkeeping gave the suggested points, in their order."""

    ids: tuple[int, ...]
    now: float


@dataclass(frozen=True)
class AttemptsCreated:
    """The ids the bookkeeping gave new attempts, by (point_id, number)."""

    ids: Mapping[tuple[int, int], int]


@dataclass(frozen=True)
class TokenReplaced:
    """The task's token changed: its queued points belong in ``queue`` now."""

    queue: str


@dataclass(frozen=True)
class Adopted:
    """The service's answer to an ``Adopt``: the copy's entry key, or None and why not."""

    point_id: int
    key: str | None
    reason: str
    now: float


@dataclass(frozen=True)
class TaskClosed:
    """The task ended (``state`` None: ended by someone else, e.g. ``gridhpo cancel``)."""

    state: str | None
    message: str | None
    now: float


LifecycleEvent = (Received | LateFound | Revoked | TimeoutCheck | ResendCheck | ReviveCheck | Suggested
                  | PointsCreated | AttemptsCreated | TokenReplaced | TaskClosed | Adopted)
