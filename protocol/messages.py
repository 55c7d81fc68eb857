"""Versioned JSON messages. Every message names its task, point and attempt; events carry a
unique ``event_id`` so that a redelivered event can be recognised and applied only once."""
from __future__ import annotations

import functools
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from gridhpo.errors import MessageError
from gridhpo.tokens import queue_key

_M = TypeVar("_M")

PROTOCOL_VERSION = 2  # 2: one events queue per task (gridhpo.events.<task>)
EVENT_TYPES = ("started", "heartbeat", "metric", "checkpoint", "finished", "failed", "interrupted")
MAX_MESSAGE_BYTES = 1 << 20
DEAD_LETTER_QUEUE = "gridhpo.dead-letter"  # malformed or oversized messages, with the reason
MAX_DEPTH = 32  # nesting of a message's JSON: ours never exceed a few levels
JSON_CONTENT_TYPE = "application/json"


def points_queue(task_id: int, token: str | None = None) -> str:
    """A task's point queue; with a token its name carries a digest of it (gridhpo/tokens.py)."""
    return f"gridhpo.points.{task_id}" + (f".{queue_key(token)}" if token else "")


def events_queue(task_id: int) -> str:
    """Where a task's pilots report. One queue per task, so the steering can take each task's
    fair share of a round and a flood of one task's events never delays another's."""
    return f"gridhpo.events.{task_id}"


def control_queue(task_id: int, pilot_id: str) -> str:
    """Where the steering's decisions about a pilot's running point (stop, pause) go; named
    after its task too, so that broker permissions can keep each task's pilots to their own
    task's queues (protocol/brokeradmin.py)."""
    return f"gridhpo.control.{task_id}.{pilot_id}"


CONTROL_ACTIONS = ("stop", "pause")


@dataclass(frozen=True)
class PointMessage:
    """A point handed to a pilot: everything needed to evaluate it, so pilots need no DB."""

    task_id: int
    task_name: str
    point_id: int
    number: int
    attempt: int
    params: dict[str, Any]
    evaluation: dict[str, Any]
    objective: dict[str, Any]
    budget: dict[str, Any] = field(default_factory=dict)  # e.g. the resource to reach (early stopping)
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    v: int = PROTOCOL_VERSION
    kind: str = "point"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """Something a pilot reports about one attempt of one point.

    ``data`` by type: started {host}; heartbeat {}; metric {seq, step, values};
    checkpoint {key, size, sha256}; finished {value, metrics, message};
    failed {reason, stderr}; interrupted {reason}.
    """

    type: str
    task_id: int
    point_id: int
    attempt: int
    pilot_id: str
    site: str = "local"
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    auth: str = ""  # the task's token; on the wire a code computed with it, never the token (protocol/auth.py)
    v: int = PROTOCOL_VERSION
    kind: str = "event"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Undecodable:
    """The body of a message that is not JSON we accept; its reason is kept for the dead letters."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Undecodable({self.reason!r})"


def decode_body(raw: object, content_type: object, content_encoding: object) -> Any:
    """A message body as we accept it on the wire: JSON text in UTF-8, at most
    ``MAX_MESSAGE_BYTES`` long and ``MAX_DEPTH`` deep. Never raises (and never runs a
    deserialiser other than ``json``): anything else comes back as ``Undecodable``."""
    try:
        if content_type != JSON_CONTENT_TYPE:
            return Undecodable(f"content type {str(content_type)[:80]!r} is not accepted (only {JSON_CONTENT_TYPE})")
        if content_encoding is not None and str(content_encoding).lower().replace("-", "") != "utf8":
            return Undecodable(f"content encoding {str(content_encoding)[:40]!r} is not accepted (only utf-8)")
        if not isinstance(raw, (bytes, str)):
            return Undecodable(f"a body of type {type(raw).__name__} is not accepted")
        if len(raw) > MAX_MESSAGE_BYTES:
            return Undecodable(f"a body of {len(raw)} bytes is over the limit of {MAX_MESSAGE_BYTES}")
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text)
        if (depth := json_depth(value)) > MAX_DEPTH:
            return Undecodable(f"JSON nested {depth} levels deep, over the limit of {MAX_DEPTH}")
        return value
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError: ValueErrors
        return Undecodable(f"not JSON: {type(exc).__name__}: {str(exc)[:200]}")


def json_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests (objects and arrays), measured without recursion so that any
    depth can be measured; the walk stops once it is past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if depth > limit:
            break  # deep enough to refuse: no need to walk the rest
        stack.extend((child, depth + 1) for child in children)
    return deepest


# fields that may hold a credential: never kept in a dead-letter record or a log
SECRET_FIELDS = frozenset({"auth", "token", "password", "secret", "signing_key"})


def without_secrets(value: Any) -> Any:
    """``value`` with every field named in ``SECRET_FIELDS`` removed, at any depth."""
    if isinstance(value, Mapping):
        return {k: without_secrets(v) for k, v in value.items() if str(k).lower() not in SECRET_FIELDS}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def _total(parse: Callable[[object], _M]) -> Callable[[object], _M]:
    """``parse`` raising only MessageError: whatever a message holds, a consumer that parses it
    can set it aside with a reason (a RecursionError or OverflowError once escaped and stopped it)."""

    @functools.wraps(parse)
    def total(body: object) -> _M:
        try:
            return parse(body)
        except MessageError:
            raise
        except (ValueError, TypeError, ArithmeticError, RecursionError, KeyError, AttributeError) as exc:
            raise MessageError(f"unparseable message: {type(exc).__name__}: {str(exc)[:200]}") from exc

    return total


def _need(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in body:
        raise MessageError(f"message field {key!r} is missing")
    value = body[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise MessageError(f"message field {key!r}: {value!r} has the wrong type")
    return value


def _check_envelope(body: object, kind: str) -> Mapping[str, Any]:
    if isinstance(body, Undecodable):
        raise MessageError(body.reason)
    if not isinstance(body, Mapping):
        raise MessageError(f"a {kind} message must be a JSON object, got {type(body).__name__}")
    if body.get("kind") != kind:
        raise MessageError(f"expected a {kind!r} message, got kind {body.get('kind')!r}")
    version = body.get("v")
    if version != PROTOCOL_VERSION:
        raise MessageError(f"protocol version {version!r} is not supported (this side speaks {PROTOCOL_VERSION})")
    return body


@_total
def parse_point(body: object) -> PointMessage:
    b = _check_envelope(body, "point")
    return PointMessage(
        task_id=_need(b, "task_id", int),
        task_name=_need(b, "task_name", str),
        point_id=_need(b, "point_id", int),
        number=_need(b, "number", int),
        attempt=_need(b, "attempt", int),
        params=dict(_need(b, "params", Mapping)),
        evaluation=dict(_need(b, "evaluation", Mapping)),
        objective=dict(_need(b, "objective", Mapping)),
        budget=dict(b["budget"]) if isinstance(b.get("budget"), Mapping) else {},
        message_id=_need(b, "message_id", str),
    )


# What the bookkeeping can store. A value beyond these limits would fail the steering's
# whole transaction of a round (and every redelivery of it), so the event is refused here.
_INT32 = 1 << 31
_INT64 = 1 << 63
_EVENT_TEXT = {"pilot_id": 64, "site": 128}
_DATA_TEXT: dict[str, int | None] = {"host": 255, "key": 1024, "sha256": 64, "reason": None, "stderr": None,
                                     "message": None, "decision": None}
_DATA_INT32 = ("seq", "sequence", "attempt")


def _storable(value: Any, where: str) -> Any:
    """``value`` as both databases store it: integers within 64 bits, NaN and infinities
    (PostgreSQL's JSON refuses them) as null, NUL characters (its text refuses them) as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise MessageError(f"{where}: a {value.bit_length()}-bit integer is out of range")
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_storable(str(k), where): _storable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _check_limits(b: Mapping[str, Any], etype: str, data: Mapping[str, Any]) -> None:
    for key in ("task_id", "point_id", "attempt"):
        _int32(b, key)
    for key, limit in _EVENT_TEXT.items():
        _text(b, key, limit)
    for key, most in _DATA_TEXT.items():
        v = data.get(key)
        if v is not None and (not isinstance(v, str) or (most is not None and len(v) > most)):
            raise MessageError(f"{etype} event: data field {key!r} must be a string"
                               + (f" of at most {most} characters" if most else ""))
    for key in _DATA_INT32:
        v = data.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not -_INT32 <= v < _INT32):
            raise MessageError(f"{etype} event: data field {key!r} must be a 32-bit integer")


def _auth(b: Mapping[str, Any]) -> str:
    auth = b.get("auth", "")
    if not isinstance(auth, str) or len(auth) > 128:
        raise MessageError("message field 'auth' must be a string of at most 128 characters")
    return auth


@_total
def parse_event(body: object) -> Event:
    raw = _check_envelope(body, "event")
    b = _storable(raw, "event")
    etype = _need(b, "type", str)
    if etype not in EVENT_TYPES:
        raise MessageError(f"event type {etype!r} is not one of {', '.join(EVENT_TYPES)}")
    data = dict(_need(b, "data", Mapping))
    _check_limits(b, etype, data)
    if etype == "finished":
        value = data.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise MessageError(f"finished event: value {raw['data'].get('value')!r} is not a finite number")
    if etype == "metric":
        if not isinstance(data.get("seq"), int) or not isinstance(data.get("values"), Mapping):
            raise MessageError("metric event: needs an integer 'seq' and a 'values' object")
    return Event(
        type=etype,
        task_id=_need(b, "task_id", int),
        point_id=_need(b, "point_id", int),
        attempt=_need(b, "attempt", int),
        pilot_id=_need(b, "pilot_id", str),
        site=_need(b, "site", str),
        data=data,
        time=float(_need(b, "time", (int, float))),
        event_id=_need(b, "event_id", str),
        auth=_auth(b),
    )


@dataclass(frozen=True)
class ControlMessage:
    """A steering decision about one running attempt: stop it (early stop) or pause it."""

    task_id: int
    point_id: int
    attempt: int
    action: str
    reason: str = ""
    v: int = PROTOCOL_VERSION
    kind: str = "control"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@_total
def parse_control(body: object) -> ControlMessage:
    b = _check_envelope(body, "control")
    action = _need(b, "action", str)
    if action not in CONTROL_ACTIONS:
        raise MessageError(f"control action {action!r} is not one of {', '.join(CONTROL_ACTIONS)}")
    return ControlMessage(
        task_id=_need(b, "task_id", int), point_id=_need(b, "point_id", int), attempt=_need(b, "attempt", int),
        action=action, reason=str(b.get("reason", "")),
    )


def message_kind(body: object) -> str | None:
    """The ``kind`` a message says it is, or None: lets a queue carry several message types."""
    if isinstance(body, Mapping):
        kind = body.get("kind")
        return kind if isinstance(kind, str) else None
    return None


def _int32(b: Mapping[str, Any], key: str) -> int:
    """An integer field the bookkeeping stores in 32 bits."""
    value = _need(b, key, int)
    if not -_INT32 <= value < _INT32:
        raise MessageError(f"message field {key!r}: {value} is out of the 32-bit range")
    return int(value)


def _text(b: Mapping[str, Any], key: str, most: int) -> str:
    value = _need(b, key, str)
    if len(value) > most:
        raise MessageError(f"message field {key!r}: longer than {most} characters")
    return str(value)


TASK_END_STATES = ("finished", "failed", "cancelled", "ended")


@dataclass(frozen=True)
class TaskEnd:
    """The last message of a task's points queue: the task has ended. A pilot that takes it
    gives it back, so that every pilot sees it (also one started later), and exits."""

    task_id: int
    state: str  # finished, failed, cancelled; "ended" when the steering does not know how
    reason: str = ""
    v: int = PROTOCOL_VERSION
    kind: str = "task-end"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_task_end(body: object) -> TaskEnd:
    b = _check_envelope(body, "task-end")
    state = _need(b, "state", str)
    if state not in TASK_END_STATES:
        raise MessageError(f"task-end state {state!r} is not one of {', '.join(TASK_END_STATES)}")
    return TaskEnd(task_id=_need(b, "task_id", int), state=state, reason=_text(b, "reason", 1000))


@dataclass(frozen=True)
class Hello:
    """A pilot announcing itself on its task's events queue before it takes points. It proves
    its token like an event does; the steering answers with a ``HelloReply`` on the pilot's
    control queue."""

    task_id: int
    pilot_id: str
    site: str = "local"
    host: str = ""
    hello_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    auth: str = ""  # the task's token; on the wire a code computed with it, never the token (protocol/auth.py)
    v: int = PROTOCOL_VERSION
    kind: str = "hello"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_hello(body: object) -> Hello:
    b = _check_envelope(body, "hello")
    return Hello(task_id=_int32(b, "task_id"), pilot_id=_text(b, "pilot_id", _EVENT_TEXT["pilot_id"]),
                 site=_text(b, "site", _EVENT_TEXT["site"]), host=_text(b, "host", 255),
                 hello_id=_text(b, "hello_id", 64), auth=_auth(b))


@dataclass(frozen=True)
class HelloReply:
    """The steering's verdict on a pilot's token: the answer to its ``Hello`` (``hello_id``), or
    unasked (``hello_id`` empty) when it refused one of the pilot's events. ``token_key`` names
    the token judged by its digest (never the token), so a pilot ignores a verdict on another
    token, e.g. one left in the control queue of an earlier pilot of the same id."""

    task_id: int
    accepted: bool
    reason: str = ""
    hello_id: str = ""
    token_key: str = ""
    v: int = PROTOCOL_VERSION
    kind: str = "hello-reply"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_hello_reply(body: object) -> HelloReply:
    b = _check_envelope(body, "hello-reply")
    return HelloReply(task_id=_need(b, "task_id", int), accepted=_need(b, "accepted", bool),
                      reason=_text(b, "reason", 1000), hello_id=_text(b, "hello_id", 64),
                      token_key=_text(b, "token_key", 64))
