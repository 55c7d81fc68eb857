"""``gridhpo dashboard``: a live web page of the tasks in a bookkeeping (stdlib http.server).

The page lists the tasks and draws a chosen task's figures (the report's script), asking
the server every few seconds whether anything changed: a task's figures are rebuilt when
its points change state, and at most every ``refresh`` seconds while points run (their
learning curves grow). Bound to loopback by default. Bound to any other address it
requires a token (given, or generated and printed), passed as ``?token=`` or as an
``Authorization: Bearer`` header; on loopback without a token only loopback Host headers
are served, so a web page elsewhere cannot read it through DNS rebinding.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import logging
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from gridhpo.bookkeeping.repository import Repository
from gridhpo.errors import ConfigError, GridHPOError, NotFoundError
from gridhpo.plots import data as D
from gridhpo.plots import figures
from gridhpo.plots.importance import DEFAULT as DEFAULT_IMPORTANCE
from gridhpo.plots.page import CSS, JS, script_json
from gridhpo.plots.report import plotly_js

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardContent:
    """What the dashboard serves, without a server: the page, the task list and each task's
    figures (cached). ``Dashboard`` serves it on its own; ``gridhpo server`` behind its users'
    API tokens (service/dashboard.py)."""

    def __init__(self, repo: Repository, refresh: float = 5.0, importance: str = DEFAULT_IMPORTANCE,
                 top_k: int = 10, table_k: int = 50) -> None:
        if refresh <= 0:
            raise ConfigError(f"--refresh {refresh}: must be a positive number of seconds")
        self.repo, self.refresh = repo, refresh
        self.importance, self.top_k, self.table_k = importance, top_k, table_k
        self.token: str | None = None
        # task id -> (state and counts, (built at, build seconds), version, payload)
        self._cache: dict[int, tuple[tuple[Any, ...], tuple[float, float], str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        # loaded before listening: without plotly the page could not draw a thing, so the
        # command fails at once with the extra to install instead of serving a broken page
        self._js: bytes | None = plotly_js("the dashboard").encode()

    # ------------------------------------------------------------------ content

    def plotly(self) -> bytes:
        if self._js is None:
            self._js = plotly_js().encode()
        return self._js

    def tasks(self, only: set[int] | None = None) -> list[dict[str, Any]]:
        """Every task (or those with an id in ``only``) with its points by state."""
        out = []
        for t in self.repo.tasks():
            if only is not None and t.id not in only:
                continue
            counts = self.repo.counts(t.id)
            out.append({"id": t.id, "name": t.name, "state": t.state, "counts": counts,
                        "points": sum(counts.values())})
        return out

    def task(self, ref: str) -> tuple[str, dict[str, Any]]:
        """(version, payload) of one task's figures; rebuilt only when the task changed."""
        row = self.repo.task(ref)
        counts = self.repo.counts(row.id)
        key = (row.state, tuple(sorted(counts.items())))
        running = counts.get("running", 0) > 0
        with self._lock:
            cached = self._cache.get(row.id)
            if cached is not None and cached[0] == key:
                # running points only grow their curves: rebuild no more often than every
                # refresh, nor than four build times (a 10,000-point task takes seconds)
                built_at, took = cached[1]
                if not running or time.monotonic() - built_at < max(self.refresh, 4 * took):
                    return cached[2], cached[3]
            start = time.monotonic()
            built = figures.build(D.load(self.repo, row), self.top_k, self.table_k, self.importance)
            built.pop("history")
            version = hashlib.sha1(script_json(built).encode()).hexdigest()[:16]
            self._cache[row.id] = (key, (start, time.monotonic() - start), version, built)
            return version, built

    def page(self) -> bytes:
        config = {"token": self.token, "refresh": self.refresh}
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>gridhpo dashboard</title>"
            f"<style>{CSS}</style><script src=\"static/plotly.js\"></script></head><body>"
            "<header><h1>gridhpo dashboard</h1><small id=\"status\">loading…</small></header>"
            "<nav id=\"tasks\"></nav><main id=\"report\" class=\"with-nav\"></main>"
            f"<script>{JS}</script><script>const DASH={script_json(config)};{_DASH_JS}</script>"
            "</body></html>\n"
        ).encode()


class Dashboard(DashboardContent):
    """The dashboard server; ``start()`` serves in a thread, ``serve_forever()`` in this one."""

    def __init__(self, repo: Repository, host: str = "127.0.0.1", port: int = 8050, token: str | None = None,
                 refresh: float = 5.0, importance: str = DEFAULT_IMPORTANCE, top_k: int = 10,
                 table_k: int = 50) -> None:
        super().__init__(repo, refresh, importance, top_k, table_k)
        self.loopback = is_loopback(host)
        self.token = token or (None if self.loopback else secrets.token_urlsafe(24))
        self._thread: threading.Thread | None = None
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            raise ConfigError(f"dashboard: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.server.daemon_threads = True
        self.host, self.port = host, int(self.server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            import socket

            host = socket.getfqdn()
        return f"http://{host}:{self.port}/" + (f"?token={quote(self.token)}" if self.token else "")

    def serve_forever(self) -> None:
        log.info("dashboard on %s", self.url)
        self.server.serve_forever(poll_interval=0.5)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="dashboard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def authorised(self, query: dict[str, list[str]], headers: Any) -> bool:
        if self.token is None:
            return is_loopback(urlsplit("//" + (headers.get("Host") or "")).hostname or "")
        given = (query.get("token") or [""])[0]
        auth = headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            given = auth[7:]
        return hmac.compare_digest(given.encode(), self.token.encode())


_DASH_JS = r"""
(function () {
  const params = new URLSearchParams(location.search);
  let current = params.get("task"), version = "", busy = false;
  function api(path, extra) {
    const u = new URL(path, location.href);
    if (DASH.token) u.searchParams.set("token", DASH.token);
    for (const [k, v] of Object.entries(extra || {})) u.searchParams.set(k, v);
    return fetch(u).then(r => r.ok ? r.json() : r.text().then(t => { throw new Error(r.status + " " + t); }));
  }
  function nav(tasks) {
    const n = document.getElementById("tasks");
    n.replaceChildren();
    for (const t of tasks) {
      const a = document.createElement("a");
      const u = new URL(location.href); u.searchParams.set("task", t.id);
      a.href = u.toString();
      a.textContent = `${t.name} (${t.state}, ${t.points})`;
      a.dataset.task = t.id;
      if (String(t.id) === String(current)) a.className = "current";
      n.appendChild(a);
    }
  }
  async function tick() {
    const tasks = await api("api/tasks");
    if (!current && tasks.length) current = tasks[tasks.length - 1].id;
    nav(tasks);
    const status = document.getElementById("status");
    if (!current) { status.textContent = "no tasks yet"; document.body.dataset.ready = "1"; return; }
    const p = await api("api/task/" + encodeURIComponent(current), {since: version});
    if (!p.unchanged) {
      const root = document.getElementById("report");
      if (root.dataset.task !== String(current)) { root.replaceChildren(); root.dataset.task = current; }
      await gridhpo.render(root, [p.task], null);
      version = p.version;
      const s = p.task.summary;
      document.body.dataset.version = version;
      document.body.dataset.points = s.points;
      document.body.dataset.finished = s.counts.finished || 0;
    }
    status.textContent = `updated ${new Date().toLocaleTimeString()}; refreshing every ${DASH.refresh}s`;
    document.body.dataset.ready = "1";
  }
  function loop() {
    if (busy) return;
    busy = true;
    tick().catch(e => { document.getElementById("status").textContent = "error: " + e.message;
                        document.body.dataset.error = e.message; })
          .finally(() => { busy = false; setTimeout(loop, DASH.refresh * 1000); });
  }
  loop();
})();
"""


def _handler(dash: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gridhpo-dashboard"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=86400" if cache else "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj, separators=(",", ":"), allow_nan=False).encode(), "application/json")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/static/plotly.js":  # the public library, no data: served without a token
                self._send(200, dash.plotly(), "application/javascript", cache=True)
                return
            if not dash.authorised(query, self.headers):
                self._send(401, b"gridhpo dashboard: a valid token is required (?token=...)\n", "text/plain")
                return
            try:
                if url.path == "/":
                    self._send(200, dash.page(), "text/html; charset=utf-8")
                elif url.path == "/api/tasks":
                    self._json(200, dash.tasks())
                elif url.path.startswith("/api/task/"):
                    version, payload = dash.task(url.path.removeprefix("/api/task/"))
                    if (query.get("since") or [""])[0] == version:
                        self._json(200, {"version": version, "unchanged": True})
                    else:
                        self._json(200, {"version": version, "task": payload})
                else:
                    self._send(404, f"not found: {html.escape(url.path)}\n".encode(), "text/plain")
            except NotFoundError as exc:
                self._json(404, {"error": str(exc)})
            except GridHPOError as exc:
                log.warning("dashboard %s: %s", url.path, exc)
                self._json(500, {"error": str(exc)})

    return Handler
