"""Events: what a pilot reports about one attempt of one point, on its task's events queue.

Every event names its task, point and attempt and carries a unique ``event_id``, so that a
redelivered event is recognised and applied only once. Its ``data`` is the wire form of one
typed payload per event type (``PAYLOADS``); ``Event.payload`` reads it back typed, with the
defaults defined once on the payload classes:

- ``started`` ``StartedData(host)``: the pilot took the point;
- ``heartbeat`` ``HeartbeatData()``: the attempt is alive (every ``evaluation.heartbeat``);
- ``metric`` ``MetricData(seq, values, step)``: one line of metrics.jsonl;
- ``checkpoint`` ``CheckpointData(key, size, sha256, sequence, attempt, time, restored, final,
  skipped)``: one the attempt saved, or started from;
- ``finished`` ``FinishedData(value, message, metrics)``: the result;
- ``failed`` ``FailedData(reason, stderr)``;
- ``interrupted`` ``InterruptedData(reason, cause, decision)``: stopped before its end by its
  pilot (walltime, a signal, a site that cannot run it) or by the steering's ``decision``
  (a control message's action); the point goes back to the queue or is paused.
"""
from __future__ import annotations

import time as _time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from gridhpo.errors import MessageError
from gridhpo.protocol.wire import (
    INT32,
    PROTOCOL_VERSION,
    auth,
    check_envelope,
    finite,
    int32,
    need,
    storable,
    text,
    total,
)


class EventType(StrEnum):
    STARTED = "started"
    HEARTBEAT = "heartbeat"
    METRIC = "metric"
    CHECKPOINT = "checkpoint"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


EVENT_TYPES = tuple(t.value for t in EventType)
ENDING_TYPES = (EventType.FINISHED, EventType.FAILED, EventType.INTERRUPTED)  # an attempt's last event
INTERRUPT_CAUSES = ("walltime", "signal", "site")  # why a pilot stopped an attempt itself
PILOT_TEXT = {"pilot_id": 64, "site": 128}  # what the bookkeeping's columns hold


class _Data:
    """Reads one event's ``data``: a field left out or null takes the payload's default."""

    def __init__(self, raw: Mapping[str, Any], etype: str) -> None:
        self.raw = raw
        self.etype = etype

    def fail(self, key: str, what: str) -> MessageError:
        return MessageError(f"{self.etype} event: data field {key!r} must be {what}")

    def given(self, key: str) -> bool:
        return key in self.raw and self.raw[key] is not None

    def text(self, key: str, most: int | None = None) -> str | None:
        if not self.given(key):
            return None
        v = self.raw[key]
        if not isinstance(v, str) or (most is not None and len(v) > most):
            raise self.fail(key, "a string" + (f" of at most {most} characters" if most else ""))
        return v

    def int32(self, key: str) -> int:
        v = self.raw[key] if key in self.raw else None
        if not isinstance(v, int) or isinstance(v, bool) or not -INT32 <= v < INT32:
            raise self.fail(key, "a 32-bit integer")
        return v

    def mapping(self, key: str) -> dict[str, Any]:
        v = self.raw[key] if key in self.raw else None
        if not isinstance(v, Mapping):
            raise self.fail(key, "an object")
        return dict(v)

    def skipped(self) -> list[dict[str, str]]:
        """A checkpoint event's ``skipped``: objects of text (key, reason)."""
        v = self.raw["skipped"] if self.given("skipped") else []
        if not isinstance(v, list) or not all(
                isinstance(x, Mapping) and all(isinstance(t, str) for t in x.values()) for x in v):
            raise self.fail("skipped", "a list of objects of strings")
        return [dict(x) for x in v]

    def flag(self, key: str) -> bool:
        if not self.given(key):
            return False
        if not isinstance(self.raw[key], bool):
            raise self.fail(key, "true or false")
        return bool(self.raw[key])


@dataclass(frozen=True)
class StartedData:
    TYPE: ClassVar[EventType] = EventType.STARTED
    host: str | None = None

    @classmethod
    def from_wire(cls, d: _Data) -> StartedData:
        return cls(host=d.text("host", 255))


@dataclass(frozen=True)
class HeartbeatData:
    TYPE: ClassVar[EventType] = EventType.HEARTBEAT

    @classmethod
    def from_wire(cls, d: _Data) -> HeartbeatData:
        return cls()


@dataclass(frozen=True)
class MetricData:
    TYPE: ClassVar[EventType] = EventType.METRIC
    seq: int  # the line of metrics.jsonl (from 0): a resent line is recognised
    values: dict[str, Any]
    step: float | None = None  # the line's "step", when it is a finite number

    @classmethod
    def from_wire(cls, d: _Data) -> MetricData:
        seq, values = (d.raw[k] if k in d.raw else None for k in ("seq", "values"))
        if not isinstance(seq, int) or not isinstance(values, Mapping):
            raise MessageError("metric event: needs an integer 'seq' and a 'values' object")
        step = d.raw["step"] if "step" in d.raw else None
        return cls(seq=d.int32("seq"), values=d.mapping("values"), step=float(step) if finite(step) else None)


@dataclass(frozen=True)
class CheckpointData:
    TYPE: ClassVar[EventType] = EventType.CHECKPOINT
    key: str  # where it is in the store
    size: int
    sha256: str
    sequence: int
    attempt: int | None = None  # the attempt that saved it (a restored one: an earlier attempt)
    time: float | None = None  # when it was saved
    restored: bool = False  # True: the attempt started from it, rather than saved it
    final: bool = False  # the upload before the attempt's end
    skipped: list[dict[str, str]] = field(default_factory=list)  # newer ones that failed to restore: key, reason

    @classmethod
    def from_wire(cls, d: _Data) -> CheckpointData:
        key, sha = d.text("key", 1024), d.text("sha256", 64)
        size = d.raw["size"] if "size" in d.raw else None
        if key is None or sha is None:
            raise d.fail("key" if key is None else "sha256", "a string")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise d.fail("size", "an integer of 0 or more")
        saved = d.raw["time"] if "time" in d.raw else None
        return cls(key=key, size=size, sha256=sha, sequence=d.int32("sequence"),
                   attempt=d.int32("attempt") if d.given("attempt") else None,
                   time=float(saved) if finite(saved) else None, restored=d.flag("restored"), final=d.flag("final"),
                   skipped=d.skipped())


@dataclass(frozen=True)
class FinishedData:
    TYPE: ClassVar[EventType] = EventType.FINISHED
    value: float  # the objective's value, finite
    message: str | None = None  # output.json's message; an empty one is None
    metrics: dict[str, Any] = field(default_factory=dict)  # output.json's other values

    @classmethod
    def from_wire(cls, d: _Data) -> FinishedData:
        value = d.raw["value"] if "value" in d.raw else None
        if not finite(value):
            raise MessageError(f"finished event: value {value!r} is not a finite number")
        metrics = d.raw["metrics"] if d.given("metrics") else {}
        if not isinstance(metrics, Mapping):
            raise d.fail("metrics", "an object")
        return cls(value=float(value), message=d.text("message") or None, metrics=dict(metrics))


@dataclass(frozen=True)
class FailedData:
    TYPE: ClassVar[EventType] = EventType.FAILED
    reason: str = "evaluation failed"  # also for an empty reason, which says nothing
    stderr: str | None = None  # the last lines of the evaluation's output

    @classmethod
    def from_wire(cls, d: _Data) -> FailedData:
        reason = d.text("reason")
        return cls(stderr=d.text("stderr")) if not reason else cls(reason=reason, stderr=d.text("stderr"))


@dataclass(frozen=True)
class InterruptedData:
    TYPE: ClassVar[EventType] = EventType.INTERRUPTED
    reason: str = "interrupted"  # also for an empty reason
    cause: str | None = None  # the pilot's own stop: one of INTERRUPT_CAUSES
    decision: str | None = None  # the steering's: the control action the pilot carried out

    @classmethod
    def from_wire(cls, d: _Data) -> InterruptedData:
        reason, cause, decision = d.text("reason"), d.text("cause"), d.text("decision")
        if not reason:
            return cls(cause=cause, decision=decision)
        return cls(reason=reason, cause=cause, decision=decision)


Payload = StartedData | HeartbeatData | MetricData | CheckpointData | FinishedData | FailedData | InterruptedData
PAYLOADS: dict[str, type[Payload]] = {
    p.TYPE.value: p for p in (StartedData, HeartbeatData, MetricData, CheckpointData, FinishedData, FailedData,
                              InterruptedData)
}


def payload_wire(payload: Payload) -> dict[str, Any]:
    """A payload's wire form; optional fields left unset are left out."""
    return {k: v for k, v in asdict(payload).items() if v is not None}


def read_payload(etype: str, data: Mapping[str, Any]) -> Payload:
    """The typed payload of an event of type ``etype``; a MessageError names a bad field."""
    if etype not in PAYLOADS:
        raise MessageError(f"event type {etype!r} is not one of {', '.join(EVENT_TYPES)}")
    return PAYLOADS[etype].from_wire(_Data(data, etype))


@dataclass(frozen=True)
class Event:
    """Something a pilot reports about one attempt of one point; ``data`` is the wire form
    of the typed ``payload`` of its type (the module's docstring lists them)."""

    type: str
    task_id: int
    point_id: int
    attempt: int
    pilot_id: str
    site: str = "local"
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=_time.time)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    auth: str = ""  # the task's token; on the wire a code computed with it, never the token (protocol/auth.py)
    v: int = PROTOCOL_VERSION
    kind: str = "event"
    # ``data`` read once (by parse_event or ``of``): the steering reads it again per use
    _payload: Payload | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, payload: Payload, *, task_id: int, point_id: int, attempt: int, pilot_id: str,
           site: str = "local", auth: str = "") -> Event:
        return cls(type=payload.TYPE.value, task_id=task_id, point_id=point_id, attempt=attempt,
                   pilot_id=pilot_id, site=site, data=payload_wire(payload), auth=auth, _payload=payload)

    @property
    def payload(self) -> Payload:
        """``data`` typed; for an event from ``parse_event`` this never raises."""
        return self._payload if self._payload is not None else read_payload(self.type, self.data)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "task_id": self.task_id, "point_id": self.point_id, "attempt": self.attempt,
                "pilot_id": self.pilot_id, "site": self.site, "data": self.data, "time": self.time,
                "event_id": self.event_id, "auth": self.auth, "v": self.v, "kind": self.kind}


@total
def parse_event(body: object) -> Event:
    raw = check_envelope(body, "event")
    b = storable(raw, "event")
    etype = need(b, "type", str)
    if etype not in PAYLOADS:
        raise MessageError(f"event type {etype!r} is not one of {', '.join(EVENT_TYPES)}")
    data = dict(need(b, "data", Mapping))
    if etype == "finished" and not finite(data["value"] if "value" in data else None):
        # the reason names the value as sent, before NaN became null
        sent = raw["data"]["value"] if isinstance(raw["data"], Mapping) and "value" in raw["data"] else None
        raise MessageError(f"finished event: value {sent!r} is not a finite number")
    payload = read_payload(etype, data)
    for key in ("task_id", "point_id", "attempt"):
        int32(b, key)
    for key, most in PILOT_TEXT.items():
        text(b, key, most)
    return Event(
        type=EventType(etype).value, task_id=b["task_id"], point_id=b["point_id"], attempt=b["attempt"],
        pilot_id=b["pilot_id"], site=b["site"], data=data, time=float(need(b, "time", (int, float))),
        event_id=need(b, "event_id", str), auth=auth(b), _payload=payload,
    )
