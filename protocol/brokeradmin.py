"""Per-task RabbitMQ users: each task's pilots can reach their own task's queues and nothing else.

A task's queues are named after it (``gridhpo.events.<id>``, ``gridhpo.points.<id>.<key>``,
``gridhpo.control.<id>.<pilot>``) and bound to its exchange ``gridhpo.task.<id>``, through
which ``Broker`` publishes (RabbitMQ checks write permission on the exchange; the default
exchange would reach every queue). A task's user gets, in the broker's virtual host:

- configure, write, read: names matching ``^gridhpo\\.(task|events|points|control)\\.<id>(\\..*)?$``;
- configure and write, never read, on ``gridhpo.dead-letter``: it can set a message aside
  (bound through its own exchange) but not read what other tasks' pilots set aside.

So it can neither consume nor publish on another task's queues, nor bind its own queue to
another task's exchange (that needs read on it), nor publish through the default exchange.

This talks to RabbitMQ's management HTTP API (the ``rabbitmq_management`` plugin), as a
central service would: it runs where the steering runs, over the network, with the steering's
broker credentials (an ``administrator`` user); ``rabbitmqctl`` needs a shell on the broker's
node and its Erlang cookie.
"""
from __future__ import annotations

import base64
import json
import logging
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlparse, urlunparse

from gridhpo.config import redact
from gridhpo.errors import QueueError
from gridhpo.protocol.messages import DEAD_LETTER_QUEUE

log = logging.getLogger(__name__)

MANAGEMENT_PORT = 15672


class BrokerAdminError(QueueError):
    """The broker's management API refused or could not be reached."""


def task_user(task_id: int, vhost: str = "/") -> str:
    """A task's broker user; users are the node's, so one of another virtual host (another
    installation on the same RabbitMQ) carries its name."""
    return f"gridhpo-task-{task_id}" + ("" if vhost == "/" else f"@{vhost}")


def task_permissions(task_id: int) -> dict[str, str]:
    """The permission patterns of a task's user (see the module's text)."""
    own = rf"^gridhpo\.(task|events|points|control)\.{task_id}(\..*)?$"
    dead = "^" + DEAD_LETTER_QUEUE.replace(".", r"\.") + "$"
    return {"configure": f"{own}|{dead}", "write": f"{own}|{dead}", "read": own}


@dataclass(frozen=True)
class Grant:
    task_id: int
    user: str
    pilot_url: str  # the broker URL the task's pilots use: a secret (it holds the password)


class RabbitAdmin:
    """Creates and removes per-task users through the management API of the broker at ``broker_url``."""

    def __init__(self, broker_url: str, api: str | None = None, timeout: float = 10.0) -> None:
        parsed = urlparse(broker_url)
        if parsed.scheme not in ("amqp", "pyamqp", "amqps") or not parsed.hostname:
            raise BrokerAdminError(f"broker URL {redact(broker_url)}: per-task users need RabbitMQ (amqp://)")
        self.broker_url = broker_url
        self.vhost = unquote(parsed.path[1:]) if len(parsed.path) > 1 else "/"
        scheme = "https" if parsed.scheme == "amqps" else "http"
        self.api = (api or f"{scheme}://{parsed.hostname}:{MANAGEMENT_PORT}").rstrip("/") + "/api"
        login = f"{unquote(parsed.username or 'guest')}:{unquote(parsed.password or 'guest')}"
        self._auth = "Basic " + base64.b64encode(login.encode()).decode()
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        """One request to the management API (``path`` below ``/api``): its decoded JSON reply,
        None for an empty one or a 404 with ``missing_ok``; any failure as ``BrokerAdminError``."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api + path, data=data, method=method,
                                     headers={"Authorization": self._auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            raise BrokerAdminError(f"RabbitMQ management API {self.api}: {method} {path.split('?')[0]} "
                                   f"refused ({exc.code} {exc.reason})") from None
        except (urllib.error.URLError, OSError) as exc:
            raise BrokerAdminError(f"RabbitMQ management API {self.api} unreachable ({exc}); is the "
                                   "rabbitmq_management plugin enabled?") from None
        return json.loads(text) if text else None

    def grant(self, task_id: int) -> Grant:
        """Create (or re-key) the task's user with a new password; returns its pilots' URL."""
        user = task_user(task_id, self.vhost)
        password = secrets.token_urlsafe(24)
        self.call("PUT", f"/users/{quote(user, safe='')}", {"password": password, "tags": ""})
        self.call("PUT", f"/permissions/{quote(self.vhost, safe='')}/{quote(user, safe='')}",
                   task_permissions(task_id))
        log.info("broker user %s: task %d's queues only", user, task_id)
        return Grant(task_id, user, self._url_for(user, password))

    def revoke(self, task_id: int) -> bool:
        """Remove the task's user and close its connections; False if it did not exist."""
        user = task_user(task_id, self.vhost)
        existed = self.call("GET", f"/users/{quote(user, safe='')}", missing_ok=True) is not None
        self.call("DELETE", f"/users/{quote(user, safe='')}", missing_ok=True)
        for conn in self.call("GET", "/connections") or []:
            # a deleted user's open connections stay open: its pilots would keep their queues
            if isinstance(conn, dict) and "user" in conn and conn["user"] == user and "name" in conn:
                self.call("DELETE", f"/connections/{quote(str(conn['name']), safe='')}", missing_ok=True)
        return existed

    def _url_for(self, user: str, password: str) -> str:
        parsed = urlparse(self.broker_url)
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}{port}"
        return urlunparse(parsed._replace(netloc=netloc))
