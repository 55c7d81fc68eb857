"""What the steering sends: points (with everything a pilot needs to evaluate one, so that
pilots need no database), control decisions about a running attempt, the end of a task,
and the verdict on a pilot's ``Hello``; and the pilot's ``Hello`` itself. Also the names of
the queues they travel on."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from gridhpo.errors import MessageError
from gridhpo.protocol.evaluation import EvaluationSpec, PointObjective, ResourceBudget
from gridhpo.protocol.events import PILOT_TEXT
from gridhpo.protocol.wire import PROTOCOL_VERSION, auth, check_envelope, int32, need, text, total
from gridhpo.tokens import queue_key


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


@dataclass(frozen=True)
class PointMessage:
    """A point handed to a pilot: everything needed to evaluate it, so pilots need no DB."""

    task_id: int
    task_name: str
    point_id: int
    number: int
    attempt: int
    params: dict[str, Any]
    evaluation: EvaluationSpec
    objective: PointObjective
    budget: ResourceBudget | None = None  # the resource to reach under early stopping; None: none
    # population-based training: the one checkpoint (a manifest entry key of this point) the
    # attempt must start from, never another; set with the exploited config in the same message
    restore: str | None = None
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    v: int = PROTOCOL_VERSION
    kind: str = "point"

    def to_json(self) -> dict[str, Any]:
        # built field by field, with the evaluation's wire form made once per task: the
        # steering sends thousands of these a second (benchmarks/dispatch.py)
        return {"task_id": self.task_id, "task_name": self.task_name, "point_id": self.point_id,
                "number": self.number, "attempt": self.attempt, "params": self.params,
                "evaluation": self.evaluation.wire, "objective": self.objective.wire,
                "budget": {} if self.budget is None else self.budget.wire, "message_id": self.message_id,
                "v": self.v, "kind": self.kind, **({} if self.restore is None else {"restore": self.restore})}


class UnusablePoint(MessageError):
    """A point message whose evaluation or objective section is bad (not made by a steering of
    ours): the pilot fails the attempt with this reason, which names the field."""

    def __init__(self, reason: str, task_id: int, point_id: int, number: int, attempt: int) -> None:
        super().__init__(reason)
        self.task_id = task_id
        self.point_id = point_id
        self.number = number
        self.attempt = attempt


@total
def parse_point(body: object) -> PointMessage:
    """A point message; ``UnusablePoint`` (a MessageError) when only its evaluation, objective
    or budget is bad, so that the pilot can report that attempt failed."""
    b = check_envelope(body, "point")
    ids = {"task_id": need(b, "task_id", int), "point_id": need(b, "point_id", int),
           "number": need(b, "number", int), "attempt": need(b, "attempt", int)}
    task_name, params, message_id = need(b, "task_name", str), need(b, "params", Mapping), need(b, "message_id", str)
    try:
        evaluation = EvaluationSpec.from_wire(need(b, "evaluation", Mapping))
        objective = PointObjective.from_wire(need(b, "objective", Mapping))
        budget = ResourceBudget.from_wire(b["budget"]) if "budget" in b else None
        restore = text(b, "restore", 1024) if "restore" in b else None
    except MessageError as exc:
        raise UnusablePoint(str(exc), **ids) from None
    return PointMessage(task_name=task_name, params=dict(params), evaluation=evaluation, objective=objective,
                        budget=budget, restore=restore, message_id=message_id, **ids)


class ControlAction(StrEnum):
    STOP = "stop"  # early stopping: the attempt ends, the point is stopped
    PAUSE = "pause"  # the attempt ends after saving its checkpoint; the point may be revived


CONTROL_ACTIONS = tuple(a.value for a in ControlAction)


@dataclass(frozen=True)
class ControlMessage:
    """A steering decision about one running attempt: stop it (early stop) or pause it."""

    task_id: int
    point_id: int
    attempt: int
    action: str  # one of ControlAction
    reason: str = ""
    v: int = PROTOCOL_VERSION
    kind: str = "control"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@total
def parse_control(body: object) -> ControlMessage:
    b = check_envelope(body, "control")
    action = need(b, "action", str)
    if action not in CONTROL_ACTIONS:
        raise MessageError(f"control action {action!r} is not one of {', '.join(CONTROL_ACTIONS)}")
    reason = b["reason"] if "reason" in b else ""
    return ControlMessage(
        task_id=need(b, "task_id", int), point_id=need(b, "point_id", int), attempt=need(b, "attempt", int),
        action=ControlAction(action).value, reason=str(reason),
    )


class TaskEndState(StrEnum):
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ENDED = "ended"  # when the steering does not know how


TASK_END_STATES = tuple(s.value for s in TaskEndState)


@dataclass(frozen=True)
class TaskEnd:
    """The last message of a task's points queue: the task has ended. A pilot that takes it
    gives it back, so that every pilot sees it (also one started later), and exits."""

    task_id: int
    state: str  # one of TaskEndState
    reason: str = ""
    v: int = PROTOCOL_VERSION
    kind: str = "task-end"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@total
def parse_task_end(body: object) -> TaskEnd:
    b = check_envelope(body, "task-end")
    state = need(b, "state", str)
    if state not in TASK_END_STATES:
        raise MessageError(f"task-end state {state!r} is not one of {', '.join(TASK_END_STATES)}")
    return TaskEnd(task_id=need(b, "task_id", int), state=TaskEndState(state).value, reason=text(b, "reason", 1000))


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


@total
def parse_hello(body: object) -> Hello:
    b = check_envelope(body, "hello")
    return Hello(task_id=int32(b, "task_id"), pilot_id=text(b, "pilot_id", PILOT_TEXT["pilot_id"]),
                 site=text(b, "site", PILOT_TEXT["site"]), host=text(b, "host", 255),
                 hello_id=text(b, "hello_id", 64), auth=auth(b))


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


@total
def parse_hello_reply(body: object) -> HelloReply:
    b = check_envelope(body, "hello-reply")
    return HelloReply(task_id=need(b, "task_id", int), accepted=need(b, "accepted", bool),
                      reason=text(b, "reason", 1000), hello_id=text(b, "hello_id", 64),
                      token_key=text(b, "token_key", 64))
