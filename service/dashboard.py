"""The live dashboard (plots/dashboard.py's page) inside the service, behind the same API
tokens: a user sees only their own tasks, an admin all.

A browser cannot put a Bearer header on a page it navigates to, so the page asks for the
token once (a form, POSTed: never in a URL) and keeps it in a cookie that scripts cannot read
(HttpOnly), that no other site's request carries (SameSite=Strict), that travels only over
HTTPS when the service is HTTPS (Secure) and only to /dashboard. The page's data requests
carry the cookie; a Bearer header works as well.
"""
from __future__ import annotations

import html
import threading
import urllib.parse
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gridhpo.errors import ConfigError
from gridhpo.service.accounts import Accounts, AuthError, UserRow

COOKIE = "gridhpo_token"
PREFIX = "/dashboard"
_LOGIN = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gridhpo dashboard</title></head><body>
<h1>gridhpo dashboard</h1><p>{message}</p>
<form method="post" action="{prefix}/login"><label>API token
<input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Open</button></form></body></html>
"""


class _Content:
    """The dashboard's content, made at its first use: it needs plotly, the API does not."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self._content: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._content is None:
                from gridhpo.plots.dashboard import DashboardContent

                self._content = DashboardContent(self.accounts.repo)
            return self._content


def _user(accounts: Accounts, request: Request) -> UserRow | None:
    header = request.headers.get("authorization") or ""
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return accounts.authenticate(token)
    except AuthError:
        return None


def _login_page(message: str, status: int = 401) -> HTMLResponse:
    return HTMLResponse(_LOGIN.format(message=html.escape(message), prefix=PREFIX), status_code=status,
                        headers={"Cache-Control": "no-store"})


def install(app: FastAPI, accounts: Accounts) -> None:
    content = _Content(accounts)
    _install_pages(app, accounts, content)
    _install_api(app, accounts, content)


def _install_pages(app: FastAPI, accounts: Accounts, content: _Content) -> None:
    """The page, and logging in and out (the API token kept in an HTTP-only cookie)."""

    @app.get(PREFIX, include_in_schema=False)
    def to_page() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=308)

    @app.get(PREFIX + "/", include_in_schema=False)
    def page(request: Request) -> Response:
        if _user(accounts, request) is None:
            return _login_page("Give your API token (`gridhpo admin token create NAME`).")
        try:
            body = content.get().page()
        except ConfigError as exc:
            return HTMLResponse(html.escape(str(exc)), status_code=503)
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @app.post(PREFIX + "/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        try:
            accounts.authenticate(token)
        except AuthError as exc:
            return _login_page(f"{exc}; try again.")
        response = RedirectResponse(PREFIX + "/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
                            secure=request.url.scheme == "https")
        return response

    @app.post(PREFIX + "/logout", include_in_schema=False)
    def logout() -> Response:
        response = _login_page("Logged out.", status=200)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response


def _install_api(app: FastAPI, accounts: Accounts, content: _Content) -> None:
    """What the page loads: the plotting library, and the tasks the user may see."""

    def need(request: Request) -> UserRow:
        user = _user(accounts, request)
        if user is None:
            raise AuthError("an API token is needed: log in at /dashboard/")
        return user

    @app.get(PREFIX + "/static/plotly.js", include_in_schema=False)
    def plotly() -> Response:  # the public library, no data: served without a token
        return Response(content.get().plotly(), media_type="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})

    @app.get(PREFIX + "/api/tasks", include_in_schema=False)
    def tasks(request: Request) -> JSONResponse:
        user = need(request)
        visible = accounts.visible_ids(user)
        return JSONResponse(content.get().tasks(None if visible is None else set(visible)))

    @app.get(PREFIX + "/api/task/{id}", include_in_schema=False)
    def task(request: Request, id: Annotated[int, Path(ge=1, le=2**31 - 1)], since: str = "") -> JSONResponse:
        row = accounts.task(need(request), id)  # another user's task: 404, as one that does not exist
        version, payload = content.get().task(str(row.id))
        body = {"version": version, "unchanged": True} if since == version else {"version": version, "task": payload}
        return JSONResponse(body)
