"""One batch of the bookkeeping's writes, as rows: ``Changes``.

Typed records (bookkeeping/records.py) come in through ``Changes.add``; the batch holds them
as the rows the repository writes with executemany statements, keyed by row so that a later
write of a row in the batch replaces the earlier one. The batch's column names are the
bookkeeping's own: no other package builds these rows.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from gridhpo.bookkeeping.records import (
    AttemptFields,
    AttemptUpdate,
    CheckpointEvent,
    LateResult,
    MetricLine,
    NewAttempt,
    NewPoint,
    PilotDone,
    PilotSeen,
    PointUpdate,
    Record,
    SegmentRecord,
)

log = logging.getLogger(__name__)


@dataclass
class Changes:
    """One batch of writes. Updates are keyed by row id so that a later change of the same
    row in the batch replaces the earlier one (each update sets every field it owns)."""

    new_attempts: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    attempt_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    point_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    late_attempts: list[dict[str, Any]] = field(default_factory=list)
    new_points: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    pilots: dict[str, dict[str, Any]] = field(default_factory=dict)
    pilot_done: dict[str, int] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  # by (point_id, segment)

    def __bool__(self) -> bool:
        return bool(self.new_attempts or self.attempt_updates or self.point_updates or self.late_attempts
                    or self.metrics or self.pilots or self.checkpoints or self.new_points
                    or self.segments)

    def add(self, record: Record) -> bool:
        """Add one typed record (bookkeeping/records.py) to the batch. False for an attempt
        update with no row to go to: neither its id nor its creation in this batch."""
        if isinstance(record, PointUpdate):
            self.point_updates[record.point_id] = {
                "b_id": record.point_id, "state": _plain(record.state), "value": record.value,
                "attempt": record.attempt, "message": record.message, "dispatched_at": record.dispatched_at,
                "ended_at": record.ended_at, "metric_values": record.metric_values, "feasible": record.feasible}
        elif isinstance(record, AttemptUpdate):
            return self._update_attempt(record)
        elif isinstance(record, NewAttempt):
            self.new_attempts[(record.point_id, record.number)] = {
                "point_id": record.point_id, "number": record.number, "pilot_id": record.pilot_id,
                "site": record.site, "started_at": record.started_at, **_attempt_columns(record.fields)}
        elif isinstance(record, MetricLine):
            self.metrics.append({
                "attempt_id": record.attempt_id, "_key": (record.point_id, record.attempt),
                "point_id": record.point_id, "seq": record.seq, "step": record.step, "values": record.values,
                "at": record.at})
        else:
            self._add_other(record)
        return True

    def _add_other(self, record: LateResult | CheckpointEvent | PilotSeen | PilotDone | NewPoint
                   | SegmentRecord) -> None:
        if isinstance(record, SegmentRecord):
            self.segments[(record.point_id, record.segment)] = asdict(record)
        elif isinstance(record, LateResult):
            self.late_attempts.append({"b_id": record.attempt_id, "value": record.value, "message": record.message})
        elif isinstance(record, CheckpointEvent):
            self.add_checkpoint(record.point_id, record.attempt_id, record.attempt, record.data, record.at)
        elif isinstance(record, PilotSeen):
            p = self.pilots.get(record.pilot_id)
            if p is None:
                self.pilots[record.pilot_id] = {"id": record.pilot_id, "task_id": record.task_id, "site": record.site,
                                                "host": record.host, "first_seen": record.at, "last_seen": record.at}
            else:
                p["last_seen"] = max(p["last_seen"], record.at)
        elif isinstance(record, PilotDone):
            self.pilot_done[record.pilot_id] = self.pilot_done.get(record.pilot_id, 0) + 1
        else:
            self.new_points.append({"task_id": record.task_id, "number": record.number, "params": record.params})

    def _update_attempt(self, record: AttemptUpdate) -> bool:
        columns = _attempt_columns(record.fields)
        if record.attempt_id is not None:
            self.attempt_updates[record.attempt_id] = {"b_id": record.attempt_id, **columns}
        elif (record.point_id, record.number) in self.new_attempts:
            self.new_attempts[(record.point_id, record.number)].update(columns)
        else:
            return False
        return True

    def add_checkpoint(self, point_id: int, attempt_id: int | None, attempt: int, data: dict[str, Any],
                       at: float) -> None:
        """Record a ``checkpoint`` event: one the attempt saved, or (``restored``) started from."""
        try:
            row = {
                "attempt_id": attempt_id, "_key": (point_id, attempt), "point_id": point_id,
                "kind": "restored" if data.get("restored") else "saved", "sequence": int(data["sequence"]),
                "key": str(data["key"]), "size": int(data["size"]), "sha256": str(data["sha256"]),
                "source_attempt": int(data.get("attempt", attempt)), "saved_at": float(data.get("time", at)),
                "at": at,
            }
        except (KeyError, TypeError, ValueError) as exc:
            # a malformed event from a pilot must not stop the steering's batch
            log.error("point %d attempt %d: malformed checkpoint event dropped (%r): %.300r",
                      point_id, attempt, exc, data)
            return
        self.checkpoints.append(row)


def _plain(state: str) -> str:
    """A state as the plain string the column holds (the steering's states are str enums)."""
    return str.__str__(state)


def _attempt_columns(f: AttemptFields) -> dict[str, Any]:
    return {"state": _plain(f.state), "last_seen": f.last_seen, "ended_at": f.ended_at,
            "end_reason": None if f.end_reason is None else _plain(f.end_reason),
            "value": f.value, "message": f.message, "stderr_tail": f.stderr_tail}
