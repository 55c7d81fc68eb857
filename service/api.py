"""The HTTP API (FastAPI): a user's tasks behind their API token.

Every route but /openapi.json, /docs and /redoc (with their assets) needs ``Authorization: Bearer <API token>``. A user
reaches only their own tasks; another user's task answers 404, exactly as a task that does
not exist, so that ids cannot be probed; an admin reaches every task.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field

from gridhpo import __version__, config
from gridhpo.bookkeeping.repository import Repository
from gridhpo.plots.names import FIGURES
from gridhpo.service import apidocs, dashboard, guards, schemas
from gridhpo.service import tasks as ops
from gridhpo.service.accounts import Accounts, AuthError, UserRow

if TYPE_CHECKING:
    from gridhpo.gateway import Gateway

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="An API token: `gridhpo admin token create USER`.")
# errors are JSON on every route, the HTML report's included (whose answer is text/html)
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": schemas.Error, "description": what, "content": _JSON_ERROR}
    for code, what in ((400, "Malformed JSON"), (401, "Missing, unknown, expired or revoked API token"),
                       (404, "No such task among the user's"), (413, "Body larger than 1 MiB"),
                       (422, "A field is missing, unknown or invalid"))
}


@dataclass
class Context:
    repo: Repository
    accounts: Accounts
    store_url: str  # the checkpoint store of pilots served over HTTP: --store, GRIDHPO_STORE, the default


def create_app(repo: Repository, store_url: str | None = None, max_body: int = guards.MAX_BODY,
               gateway: Gateway | None = None) -> FastAPI:
    """The service's app; with ``gateway``, pilots reach their tasks through it too (docs/gateway.md)."""
    app = FastAPI(title="gridhpo", version=__version__, responses=ERRORS, docs_url=None, redoc_url=None,
                  description="Hyperparameter optimisation tasks of the users of one gridhpo service.")
    app.state.ctx = Context(repo, Accounts(repo), config.store_url(store_url))
    guards.install(app)
    apidocs.install(app)  # /docs and /redoc with their assets served here, not from a CDN
    app.include_router(router)
    dashboard.install(app, app.state.ctx.accounts)
    wider: dict[str, int] = {}
    if gateway is not None:
        from gridhpo.gateway import PREFIX, pilot_router, repository_tokens
        from gridhpo.gateway.router import MAX_BODY_BYTES

        app.include_router(pilot_router(gateway, repository_tokens(repo)))
        wider[PREFIX] = MAX_BODY_BYTES
    app.add_middleware(guards.CatchAll)
    app.add_middleware(guards.BodyLimit, limit=max_body, wider=wider)
    return app


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(_ctx)]


def _user(ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> UserRow:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthError("an API token is needed: send `Authorization: Bearer <token>`")
    return ctx.accounts.authenticate(credentials.credentials)


User = Annotated[UserRow, Depends(_user)]
# the bookkeeping's ids are 32-bit: a larger one is refused (422) before any database sees it
MAX_ID = 2**31 - 1
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id.")]
Also = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None,
                 Query(max_length=20, description="More of the user's tasks, side by side.")]
router = APIRouter(prefix="/api/v1")


@router.get("/me", response_model=schemas.Me, tags=["users"])
def me(user: User) -> schemas.Me:
    """The user the token belongs to."""
    return schemas.Me(name=user.name, admin=user.admin)


@router.post("/tasks", status_code=201, response_model=schemas.TaskRef, tags=["tasks"],
             responses={409: {"model": schemas.Error, "description": "The task name is taken"}})
def submit(body: schemas.SubmitRequest, user: User, ctx: Ctx) -> schemas.TaskRef:
    """Validate a task file (as a JSON mapping) and record it as a new task of the user."""
    task_id, name = ops.submit(ctx.accounts, user, body.task, body.name)
    log.info("user %s submitted task %r (id %d)", user.name, name, task_id)
    return schemas.TaskRef(id=task_id, name=name, state="active")


@router.get("/tasks", response_model=schemas.TaskList, tags=["tasks"])
def list_tasks(user: User, ctx: Ctx) -> schemas.TaskList:
    """Every task of the user (every task for an admin), as `gridhpo status` shows them."""
    rows = ops.status(ctx.repo, ctx.accounts.tasks(user))
    return schemas.TaskList(tasks=[schemas.TaskStatus(**r) for r in rows])


@router.get("/tasks/{id}", response_model=schemas.TaskStatus, tags=["tasks"])
def task_status(id: TaskId, user: User, ctx: Ctx) -> schemas.TaskStatus:
    """One task's status, with its message and pilots."""
    return schemas.TaskStatus(**ops.status(ctx.repo, [ctx.accounts.task(user, id)], detail=True)[0])


@router.get("/tasks/{id}/results", response_model=schemas.Results, tags=["tasks"])
def task_results(id: TaskId, user: User, ctx: Ctx, sort: Literal["number", "value"] = "number",
                 number: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None) -> schemas.Results:
    """Every point (or point ``number``) with its attempts, as `gridhpo results` shows them."""
    return schemas.Results(**ops.task_results(ctx.repo, ctx.accounts.task(user, id), sort, number))


@router.get("/tasks/{id}/lineage", response_model=schemas.Lineage, tags=["tasks"])
def lineage(id: TaskId, user: User, ctx: Ctx) -> schemas.Lineage:
    """Population-based training: every member's segments, as `gridhpo results --lineage` reads them."""
    return schemas.Lineage(**ops.lineage(ctx.repo, ctx.accounts.task(user, id)))


@router.post("/tasks/{id}/cancel", response_model=schemas.TaskRef, tags=["tasks"],
             responses={409: {"model": schemas.Error, "description": "The task is not active"}})
def cancel(id: TaskId, user: User, ctx: Ctx) -> schemas.TaskRef:
    """No new points; the steering ends the open ones."""
    row = ops.cancel(ctx.repo, ctx.accounts.task(user, id))
    log.info("user %s cancelled task %r (id %d)", user.name, row.name, row.id)
    return schemas.TaskRef(id=row.id, name=row.name, state=row.state)


@router.post("/tasks/{id}/token", response_model=schemas.PilotToken, tags=["tasks"])
def token(id: TaskId, user: User, ctx: Ctx, body: schemas.TokenRequest | None = None) -> schemas.PilotToken:
    """The task's pilot token (as `gridhpo token` prints it), replaced with ``revoke``."""
    body = body or schemas.TokenRequest(revoke=False, expires=None)
    return schemas.PilotToken(**ops.pilot_token(ctx.repo, ctx.accounts.task(user, id), body.revoke, body.expires))


@router.get("/tasks/{id}/report", response_class=HTMLResponse, tags=["tasks"],
            responses={200: {"content": {"text/html": {}}, "description": "The self-contained HTML report"}})
def report(id: TaskId, user: User, ctx: Ctx, also: Also = None, top: Annotated[int, Query(ge=1, le=10_000)] = 10,
           table: Annotated[int, Query(ge=1, le=10_000)] = 50,
           importance: Literal["forest", "anova"] = "forest") -> HTMLResponse:
    """The HTML report of `gridhpo plot` (``also``: more of the user's tasks beside it)."""
    rows = [ctx.accounts.task(user, i) for i in [id, *(also or [])]]
    return HTMLResponse(ops.report_html(ctx.repo, rows, top, table, importance))


Figure = Literal[FIGURES]  # type: ignore[valid-type]


@router.get("/tasks/{id}/figures/{figure}", response_class=Response, tags=["tasks"],
            responses={200: {"content": {"image/png": {}}, "description": "The figure as a PNG image"}})
def figure(id: TaskId, figure: Figure, user: User, ctx: Ctx, top: Annotated[int, Query(ge=1, le=10_000)] = 10,
           importance: Literal["forest", "anova"] = "forest") -> Response:
    """One figure of `gridhpo plot --png` (the files it writes are TASKNAME-FIGURE.png)."""
    png = ops.figure_png(ctx.repo, ctx.accounts.task(user, id), figure, top, importance)
    return Response(png, media_type="image/png")
