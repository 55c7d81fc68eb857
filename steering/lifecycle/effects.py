"""What the lifecycle core asks for: typed outputs the service carries out.

Records to write (``gridhpo.bookkeeping.records``, committed in one transaction), messages
to publish once they are committed, results to tell the optimiser, and attempts to look up
in the bookkeeping (a late result's attempt is not in memory).
"""
from __future__ import annotations

from dataclasses import dataclass

from gridhpo.bookkeeping.records import Record
from gridhpo.protocol import ControlMessage, PointMessage


@dataclass(slots=True)
class SendPoint:
    """A point's message for the pilots, on the task's points queue."""

    queue: str
    message: PointMessage


@dataclass(slots=True)
class SendControl:
    """A decision about a running attempt, on its pilot's control queue."""

    pilot_id: str
    message: ControlMessage


@dataclass(slots=True)
class Tell:
    """A point's result for the optimiser (``value`` None: it failed). In multi-objective
    search or under constraints ``values`` holds every objective (``value`` the first) and
    ``violations`` each constraint's."""

    number: int
    value: float | None
    values: tuple[float, ...] | None = None
    violations: tuple[float, ...] = ()


@dataclass(slots=True)
class LookUpLate:
    """A result for an attempt not open any more: the service reads the attempt's id and
    state and hands them back as ``LateFound``."""

    task_id: int
    point_id: int
    attempt: int


@dataclass(slots=True)
class Adopt:
    """Population-based training: copy ``source_member``'s checkpoint ``key`` (a manifest
    entry) into ``member``'s manifest, pinned; the service answers with ``Adopted``."""

    task_id: int
    task_name: str
    point_id: int
    member: int
    source_member: int
    key: str
    attempt: int


@dataclass(slots=True)
class Unpin:
    """``member`` restored the adopted checkpoint ``key``, or ``key`` is no longer its newest
    segment end: its pin may go."""

    task_id: int
    task_name: str
    member: int
    key: str


@dataclass(slots=True)
class Pin:
    """``key`` is ``member``'s newest segment end, which another member may copy: the store
    keeps it past retention (until a newer one replaces it)."""

    task_id: int
    task_name: str
    member: int
    key: str


Effect = Record | SendPoint | SendControl | Tell | LookUpLate | Adopt | Unpin | Pin
