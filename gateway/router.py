"""The pilot gateway's HTTP API (FastAPI): what a pilot needs, over outbound HTTPS alone.

Every request names its task in the path and presents the task's pilot token as
``Authorization: Bearer``; a wrong, replaced or expired one gets 401 before anything else.
Bodies are JSON of at most ``MAX_BODY_BYTES`` (413 beyond, 400 for what is not JSON, 422
for a field that is missing, unknown or out of range, naming it).

- ``POST {prefix}/tasks/{id}/points``: long-poll for points (``wait`` seconds at most); each
  comes with a delivery id under a lease (``gateway/leases.py``). A retried request (same
  ``request_id``) gets the same points.
- ``POST {prefix}/tasks/{id}/settle``: ack, requeue or dead-letter a delivery.
- ``POST {prefix}/tasks/{id}/events``: events (and hellos) passed on to the task's events
  queue unchanged, the pilot's held deliveries renewed; the answer carries the steering's
  control messages for that pilot (early stop, pause, a verdict on its token).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from gridhpo.gateway.auth import RepositoryTokens, TokenLookup
from gridhpo.gateway.leases import Gateway, Taken
from gridhpo.gateway.waiting import Waiting
from gridhpo.protocol import Broker
from gridhpo.protocol.messages import MAX_MESSAGE_BYTES, message_kind, points_queue
from gridhpo.tokens import same

log = logging.getLogger(__name__)

PREFIX = "/api/v1/pilot"
MAX_BODY_BYTES = 2 * MAX_MESSAGE_BYTES  # a request's body; one message is at most MAX_MESSAGE_BYTES
MAX_WAIT = 30.0  # seconds a long-poll may ask to wait
MAX_POINTS = 64  # points one request may take
DISCONNECT_EVERY = 5.0  # seconds between a long-poll's checks that its pilot is still there
MAX_MESSAGES = 500  # messages one events request may carry
_ID = r"^[A-Za-z0-9_.:-]+$"
MAX_ACKS = 256  # deliveries one request may acknowledge
_ACKS = "Deliveries to acknowledge first (their start is reported): a pilot's acks ride on its next request."

_M = TypeVar("_M", bound=BaseModel)
TaskId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="The task's id")]  # the bookkeeping's column


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointsRequest(_Strict):
    request_id: str = Field(min_length=1, max_length=64, pattern=_ID,
                            description="Chosen by the pilot; a retry with the same id gets the same points.")
    max: int = Field(default=1, ge=1, le=MAX_POINTS)
    wait: float = Field(default=0.0, ge=0.0, le=MAX_WAIT, description="Seconds to wait for a point at most.")
    acks: list[str] = Field(default_factory=list, max_length=MAX_ACKS, description=_ACKS)


class PointOut(BaseModel):
    delivery: str
    body: dict[str, Any]


class PointsAnswer(BaseModel):
    points: list[PointOut]


class SettleRequest(_Strict):
    delivery: str = Field(min_length=1, max_length=64, pattern=_ID)
    action: Literal["ack", "requeue", "dead_letter"]
    reason: str = Field(default="", max_length=1000)


class SettleAnswer(BaseModel):
    settled: bool = Field(description="False for a delivery not held here (settled, expired, or before a restart).")


class EventsRequest(_Strict):
    pilot_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    messages: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_MESSAGES)
    renew: list[str] = Field(default_factory=list, max_length=MAX_POINTS * 4,
                             description="Deliveries this pilot still holds: their leases are renewed.")
    acks: list[str] = Field(default_factory=list, max_length=MAX_ACKS, description=_ACKS)
    confirm: bool = Field(default=True, description="Wait for the broker's confirm before answering; false for "
                          "results whose loss the steering detects (their point is acked later), as on the broker.")


class EventsAnswer(BaseModel):
    control: list[dict[str, Any]]


def _error(status: int, message: str, field: str | None = None) -> HTTPException:
    return HTTPException(status, detail={"error": message, "field": field})


async def _body(request: Request, model: type[_M]) -> _M:
    """The request's JSON body as ``model``: 413 past the limit, 400 if not JSON, 422 naming the field."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _error(413, f"the body is {declared} bytes, over the limit of {MAX_BODY_BYTES}")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _error(413, f"the body is over the limit of {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(bytes(raw))
    except (ValueError, RecursionError) as exc:
        raise _error(400, f"the body is not JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise _error(422, f"{field or 'body'}: {first['msg']}", field) from None
    except RecursionError:
        raise _error(422, "the body is nested too deep") from None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The request body in the OpenAPI page (the body is read by hand, to bound its size first)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Not JSON"}, 401: {"description": "Wrong, replaced or expired pilot token"},
    413: {"description": f"Body over {MAX_BODY_BYTES} bytes"}, 422: {"description": "A field missing or invalid"},
}


async def _long_poll(gw: Gateway, waiting: Waiting, request: Request, task_id: int, token: str,
                     body: PointsRequest) -> PointsAnswer:
    """Points, looked for at once (a retried request gets its points again), then when the
    queue's watcher says some are ready (``gateway/waiting.py``), until ``body.wait`` passes."""
    queue = points_queue(task_id, token)
    deadline = time.monotonic() + body.wait
    taken = Taken()
    if gw.knows(task_id, body.request_id) or not gw.seems_empty(queue):
        taken = await run_in_threadpool(gw.take, task_id, token, body.request_id, body.max)
    while not taken.points and (left := deadline - time.monotonic()) > 0:
        # in slices: a pilot gone meanwhile is not waited for to the end (asking is not free)
        if await waiting.wait(queue, min(left, DISCONNECT_EVERY)):
            taken = await run_in_threadpool(gw.take, task_id, token, body.request_id, body.max, False)
        elif await request.is_disconnected():
            break
    return PointsAnswer(points=[PointOut(delivery=d, body=b if isinstance(b, dict) else {"value": b})
                                for d, b in taken.points])


def _token_check(tokens: TokenLookup) -> Callable[[Request, int], Awaitable[None]]:
    """The check of a request's bearer token against the task's pilot token (401 otherwise)."""

    async def check(request: Request, task_id: int) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        presented = presented.strip()
        if scheme.lower() == "bearer" and presented:
            known, token = tokens.cached(task_id) if isinstance(tokens, RepositoryTokens) else (False, None)
            if not known:  # the database is asked in a thread
                token = await run_in_threadpool(tokens, task_id)
            if token is not None and same(presented, token):
                return
        raise _error(401, f"task {task_id}: the pilot token is wrong, replaced or expired (Authorization: Bearer)")

    return check


def _check_events(task_id: int, messages: list[dict[str, Any]]) -> None:
    """Each reported message is an event or hello of this task, within the size limit."""
    for i, m in enumerate(messages):
        if message_kind(m) not in ("event", "hello") or "task_id" not in m or m["task_id"] != task_id:
            raise _error(422, f"messages.{i}: not an event or hello of task {task_id}", f"messages.{i}")
        if len(json.dumps(m)) > MAX_MESSAGE_BYTES:
            raise _error(413, f"messages.{i}: over the limit of {MAX_MESSAGE_BYTES} bytes", f"messages.{i}")


def pilot_router(broker: Broker | Callable[[], Broker] | Gateway, tokens: TokenLookup, *,
                 prefix: str = PREFIX) -> APIRouter:
    """The gateway's routes, to mount in the service's app. ``broker``: the broker (or a function
    making it on first use, or a ready ``Gateway``) the steering uses; ``tokens``: the task's
    pilot token now (``gateway.auth.repository_tokens(repo)``)."""
    gw = broker if isinstance(broker, Gateway) else Gateway(broker)
    waiting = Waiting(gw)
    router = APIRouter(prefix=prefix, tags=["pilots"], responses=_AUTH_ERRORS)

    check = _token_check(tokens)

    @router.post("/tasks/{task_id}/points", response_model=PointsAnswer, openapi_extra=_schema(PointsRequest))
    async def points(task_id: TaskId, request: Request) -> PointsAnswer:
        """Take points of the task, waiting up to ``wait`` seconds for the first."""
        await check(request, task_id)
        body = await _body(request, PointsRequest)
        token = request.headers["authorization"].partition(" ")[2].strip()
        if body.acks:
            await run_in_threadpool(gw.ack_all, task_id, body.acks)
        return await _long_poll(gw, waiting, request, task_id, token, body)

    @router.post("/tasks/{task_id}/settle", response_model=SettleAnswer, openapi_extra=_schema(SettleRequest))
    async def settle(task_id: TaskId, request: Request) -> SettleAnswer:
        """Acknowledge a point (its start is reported), give it back, or set it aside."""
        await check(request, task_id)
        body = await _body(request, SettleRequest)
        done = await run_in_threadpool(gw.settle, task_id, body.delivery, body.action, body.reason)
        return SettleAnswer(settled=done)

    @router.post("/tasks/{task_id}/events", response_model=EventsAnswer, openapi_extra=_schema(EventsRequest))
    async def events(task_id: TaskId, request: Request) -> EventsAnswer:
        """Report events (heartbeats included); the answer holds the steering's decisions for the pilot."""
        await check(request, task_id)
        body = await _body(request, EventsRequest)
        _check_events(task_id, body.messages)
        control = await run_in_threadpool(gw.report, task_id, body.pilot_id, body.messages, body.renew, body.acks,
                                           body.confirm)
        return EventsAnswer(control=[c if isinstance(c, dict) else {"value": c} for c in control])

    return router
