"""Talking to a gridhpo service over HTTP(S) with an API token, with the standard library
only, so that a light install (no SQLAlchemy, no FastAPI) can submit and follow tasks.

The token goes in the ``Authorization`` header, never in a URL; it is sent over plain HTTP
only to this machine (loopback), and never across a redirect.
"""
from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gridhpo.errors import ConfigError, GridHPOError, NotFoundError, unknown_name

SERVER_ENV = "GRIDHPO_SERVER"
TOKEN_ENV = "GRIDHPO_API_TOKEN"
TIMEOUT = 300.0  # seconds: a report of a large task takes a while to draw
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class RemoteError(GridHPOError):
    """The service refused a request or could not be reached; ``status`` is the HTTP code (0:
    no answer) and ``field`` the request field it named."""

    def __init__(self, message: str, status: int = 0, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


class ConflictError(RemoteError):
    """The task's state does not allow the action (HTTP 409)."""


def server_url(explicit: str | None = None) -> str | None:
    return explicit or os.environ.get(SERVER_ENV) or None


def check_url(url: str) -> str:
    """The service's base URL without a trailing slash; plain HTTP only to this machine."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"server URL {url!r}: give https://HOST[:PORT] (or http:// to this machine)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"server URL {parts.scheme}://{parts.hostname}: no user, password, query or fragment "
                          f"in it (the API token goes in {TOKEN_ENV} or `gridhpo login`)")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK and not parts.hostname.startswith("127."):
        raise ConfigError(f"server URL {url!r}: plain HTTP would show the API token to the network; use https://")
    return url.rstrip("/")


def config_path() -> Path:
    """Where ``gridhpo login`` keeps API tokens: $XDG_CONFIG_HOME/gridhpo/client.json."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gridhpo" / "client.json"


def _saved() -> dict[str, str]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); remove it and `gridhpo login` again") from None
    servers = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"{path}: no 'servers' mapping; remove it and `gridhpo login` again")
    return {str(k): str(v) for k, v in servers.items()}


def save_login(server: str, token: str) -> Path:
    """Remember ``token`` for ``server`` in a file only its owner can read (mode 0600)."""
    path = config_path()
    servers = _saved()
    servers[check_url(server)] = token
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # an older file of another mode is replaced whole
        json.dump({"servers": servers}, f, indent=1)
    os.replace(tmp, path)
    return path


def api_token(server: str) -> str:
    """The API token for ``server``: GRIDHPO_API_TOKEN, else the one `gridhpo login` saved."""
    token = os.environ.get(TOKEN_ENV) or _saved().get(check_url(server))
    if not token:
        raise ConfigError(f"no API token for {check_url(server)}: set {TOKEN_ENV} or run `gridhpo login "
                          f"--server {check_url(server)}`")
    return token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would resend the Authorization header to wherever a redirect points."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise RemoteError(f"the service answered {code} (redirect to {urllib.parse.urlsplit(newurl).netloc}); "
                          "give the service's own URL", code)


class Service:
    """One service, one user (the API token's). Every method returns the decoded JSON answer,
    or raises RemoteError (NotFoundError for a task the user does not have)."""

    def __init__(self, url: str, token: str, timeout: float = TIMEOUT, context: ssl.SSLContext | None = None) -> None:
        self.url = check_url(url)
        self._token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=context))

    def __repr__(self) -> str:
        return f"Service({self.url!r})"  # never the token

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        raw = self._call(method, path, body, query)
        return json.loads(raw)

    def _call(self, method: str, path: str, body: Any, query: dict[str, Any] | None) -> bytes:
        url = self.url + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        req.add_header("Accept", "application/json, text/html, image/png")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            raise _refusal(exc, self.url) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach the service {self.url}: {reason}") from None

    # ------------------------------------------------------------------ the API

    def me(self) -> dict[str, Any]:
        return dict(self.request("GET", "/api/v1/me"))

    def submit(self, task: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        return dict(self.request("POST", "/api/v1/tasks", {"task": task, "name": name}))

    def tasks(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v1/tasks")["tasks"])

    def task(self, task_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/tasks/{task_id}"))

    def results(self, task_id: int, sort: str = "number", number: int | None = None) -> dict[str, Any]:
        query: dict[str, Any] = {"sort": sort} | ({} if number is None else {"number": number})
        return dict(self.request("GET", f"/api/v1/tasks/{task_id}/results", query=query))

    def lineage(self, task_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/tasks/{task_id}/lineage"))

    def cancel(self, task_id: int) -> dict[str, Any]:
        return dict(self.request("POST", f"/api/v1/tasks/{task_id}/cancel"))

    def token(self, task_id: int, revoke: bool = False, expires: str | None = None) -> dict[str, Any]:
        return dict(self.request("POST", f"/api/v1/tasks/{task_id}/token", {"revoke": revoke, "expires": expires}))

    def report(self, task_id: int, also: list[int] | None = None, top: int = 10, table: int = 50,
               importance: str = "forest") -> str:
        query = {"also": also or [], "top": top, "table": table, "importance": importance}
        return self._call("GET", f"/api/v1/tasks/{task_id}/report", None, query).decode()

    def figure(self, task_id: int, figure: str, top: int = 10, importance: str = "forest") -> bytes:
        """One figure of ``gridhpo plot --png`` as PNG bytes."""
        return self._call("GET", f"/api/v1/tasks/{task_id}/figures/{figure}", None,
                          {"top": top, "importance": importance})

    def resolve(self, ref: str) -> int:
        """A task id from an id or one of the user's task names."""
        if ref.isdigit():
            return int(ref)
        names = {t["name"]: int(t["id"]) for t in self.tasks()}
        if ref in names:
            return names[ref]
        hint = str(unknown_name("task", ref, names)).removeprefix("unknown task ") if names else ""
        raise NotFoundError(f"no task {ref!r} on {self.url}" + (f" ({hint})" if hint else ""))


def _refusal(exc: urllib.error.HTTPError, url: str) -> GridHPOError:
    try:
        body = json.loads(exc.read() or b"{}")
        message, field = str(body["error"]), body.get("field")
    except (ValueError, KeyError, TypeError, OSError):
        message, field = f"{exc.code} {exc.reason}", None
    if exc.code == 404:
        return NotFoundError(f"{message} on {url}")
    if exc.code == 409:
        return ConflictError(message, exc.code, field)
    if exc.code == 401:
        return RemoteError(f"{url} refused the API token: {message}", exc.code, field)
    return RemoteError(message, exc.code, field)
