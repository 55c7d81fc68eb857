"""What every request meets before and after its route: the body size limit, and errors as
one JSON shape ``{"error": ..., "field": ...}`` with the right status code, never a secret
and never a traceback."""
from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridhpo.errors import BookkeepingError, ConfigError, GridHPOError, NotFoundError
from gridhpo.service.accounts import AuthError, NameTaken
from gridhpo.service.tasks import StateError, error_field

log = logging.getLogger(__name__)

#: the largest request body accepted: a task file's own limit (steering/loading.py), with room
#: for the JSON around it
MAX_BODY = 1 << 20


def error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse (413) a request body larger than ``limit`` before the route reads it: a
    Content-Length that says so at once, a chunked body once that many bytes came."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY, wider: dict[str, int] | None = None) -> None:
        # wider: a limit of its own for the paths under a prefix (the pilot gateway's events
        # carry up to two messages of MAX_MESSAGE_BYTES each)
        self.app, self.limit, self.wider = app, limit, dict(wider or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = next((n for prefix, n in self.wider.items() if path.startswith(prefix)), self.limit)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = bool(message.get("more_body"))
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error(413, f"the request body is larger than {limit} bytes", "body")
        await response(scope, receive, send)


# on every answer: no cache keeps one (a pilot token, a user's results), no browser guesses
# another content type than the one given
_HEADERS = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))


class CatchAll:
    """A bug answers 500 ``{"error": "internal error"}`` and the service goes on. The log gets
    the exception's type and traceback but not its text, which may quote a secret (a
    database driver's error quotes the statement's parameters). Every answer gets _HEADERS
    (where a route set none of its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in _HEADERS if h[0] not in present)]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            where = f"{scope.get('method', '')} {scope.get('path', '')}"
            trace = "".join(traceback.format_tb(exc.__traceback__))
            log.error("%s failed: %s (message withheld)\n%s", where, type(exc).__name__, trace)
            if scope["type"] != "http" or started:
                raise
            await error(500, "internal error")(scope, receive, send)


def _loc_field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first: dict[str, Any] = dict(errors[0]) if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first["type"] == "json_invalid":
        return error(400, f"the body is not valid JSON: {first['msg']}", "body")
    field = _loc_field(tuple(first["loc"]))
    kind = {"missing": "is missing", "extra_forbidden": "is not a known field"}.get(str(first["type"]))
    return error(422, f"{field or 'body'}: {kind or first['msg']}", field)


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    # FastAPI's 400: a body its JSON parser gave up on (nested too deep for it)
    return error(exc.status_code, detail, "body" if exc.status_code == 400 else None, headers)


async def _gridhpo(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GridHPOError)
    if isinstance(exc, AuthError):
        return error(401, str(exc), "Authorization", {"WWW-Authenticate": "Bearer"})
    if isinstance(exc, NotFoundError):
        return error(404, str(exc))
    if isinstance(exc, StateError):
        return error(409, str(exc))
    if isinstance(exc, NameTaken):
        return error(409, str(exc), "name")
    if isinstance(exc, ConfigError):
        return error(422, str(exc), error_field(str(exc), "task"))
    if isinstance(exc, BookkeepingError):
        # its text names the database (redacted); the client needs no more than that it failed
        log.error("bookkeeping failed: %s", exc)
        return error(503, "the bookkeeping is unavailable; try again")
    log.error("request failed: %s", exc)
    return error(500, "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(GridHPOError, _gridhpo)
