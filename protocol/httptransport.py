"""The pilot's side of the HTTP gateway: the ``Broker`` interface a pilot uses, over HTTPS.

Standard library only (``http.client`` + ``ssl``), so a pilot installed without the service's
dependencies talks to the gateway (``gateway/router.py``) with nothing more than outbound
HTTPS. ``HttpBroker`` serves one task, as a pilot does:

- ``get``/``drain`` of the task's point queue long-poll ``/points``; each point comes as an
  ``HttpDelivery`` whose ``ack``/``requeue``/``dead_letter`` settle it at the gateway.
- ``publish``/``publish_many`` to the task's events queue post ``/events``; the answer holds
  the control messages waiting for the pilot, kept for ``get`` of its control queue (which
  also asks for them itself now and then, faster while a hello waits for its answer).

Delivery is at least once: a request that fails (connection refused or reset, a 5xx, a
timeout) is sent again, unchanged, until it succeeds or ``patience`` seconds pass (then
``QueueError``, as a broker that stays unreachable gives): events carry their ids and are
applied once, and a retried ``/points`` keeps its request id, so it gets the same points.
"""
from __future__ import annotations

import http.client
import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from gridhpo.config import redact
from gridhpo.errors import QueueError
from gridhpo.protocol import auth
from gridhpo.protocol.broker import Broker, Delivery
from gridhpo.protocol.messages import MAX_MESSAGE_BYTES, control_queue, events_queue, points_queue

log = logging.getLogger(__name__)

PREFIX = "/api/v1/pilot"
PATIENCE = 120.0  # seconds a request is retried before the gateway counts as unreachable
LONG_POLL = 10.0  # seconds a point request waits at the gateway (a pilot stopped meanwhile exits after it)
CONTROL_EVERY = 2.0  # seconds between fetches of control messages when no event went out
HELLO_CONTROL_EVERY = 0.25  # ... while a hello waits for its answer
HELLO_WINDOW = 15.0  # seconds after a hello during which control is fetched faster
_RETRIED_STATUS = (429, 500, 502, 503, 504)
KEEPALIVE_IDLE = 4.0  # seconds a kept-alive connection may idle before a new one is opened (uvicorn closes at 5)


class GatewayError(QueueError):
    """The gateway refused a request (a wrong token, a malformed request) or stayed unreachable."""


class GatewayRefused(GatewayError):
    """401: the task's token is wrong, replaced or expired."""


class HttpClient:
    """JSON requests with a bearer token, one kept-alive connection per thread, retried."""

    def __init__(self, server: str, token: str, *, patience: float = PATIENCE, cafile: str | None = None,
                 timeout: float = LONG_POLL + 30.0) -> None:
        parsed = urlparse(server)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise GatewayError(f"--server {redact(server)}: not an http:// or https:// URL")
        self.server = server.rstrip("/")
        self.base = parsed.path.rstrip("/")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._token = token
        self.patience = patience
        self._timeout = timeout
        self._ssl = ssl.create_default_context(cafile=cafile) if self._https else None
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and time.monotonic() - getattr(self._local, "used", 0.0) > KEEPALIVE_IDLE:
            self._drop()  # the server has closed it by now, or is about to
            conn = None
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def once(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request: (status, decoded JSON answer); OSError/HTTPException if it failed on the way."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for reused in (getattr(self._local, "conn", None) is not None, False):
            conn = self._connection()
            try:
                conn.request(method, self.base + path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                self._local.used = time.monotonic()
                break
            except (OSError, http.client.HTTPException):
                self._drop()
                if not reused:
                    raise
                # a kept-alive connection the server closed meanwhile: once more on a new one
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, {"error": raw[:200].decode("utf-8", "replace")}

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of a 2xx; retried while the gateway is unreachable or fails (5xx)."""
        deadline = time.monotonic() + self.patience
        pause = 0.2
        while True:
            try:
                status, answer = self.once(method, path, body)
                if status < 300:
                    return answer
                problem = f"HTTP {status}: {_reason(answer)}"
                if status == 401:
                    raise GatewayRefused(f"{self.server}: {problem}")
                if status not in _RETRIED_STATUS:
                    raise GatewayError(f"{method} {self.server}{self.base}{path}: {problem}")
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + pause > deadline:
                raise GatewayError(f"{self.server} unreachable for {self.patience:g}s: {problem}")
            log.warning("gateway %s: %s; trying again in %.1fs", self.server, problem, pause)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def close(self) -> None:
        self._drop()


def _reason(answer: Any) -> str:
    if isinstance(answer, dict) and "detail" in answer:
        detail = answer["detail"]
        return str(detail["error"]) if isinstance(detail, dict) and "error" in detail else str(detail)[:300]
    return str(answer)[:300]


class HttpDelivery(Delivery):
    """A point held for this pilot by the gateway, or a control message (already taken)."""

    def __init__(self, body: Any, broker: HttpBroker, queue: str, delivery: str | None) -> None:
        # not Delivery.__init__: there is no kombu message; every method using it is replaced
        self.body = body
        self.queue = queue
        self._gateway = broker
        self._delivery = delivery
        self._settled = delivery is None

    @property
    def size(self) -> int:
        return len(json.dumps(self.body))

    def _settle(self, action: str, reason: str = "") -> None:
        if self._settled:
            return
        self._settled = True
        assert self._delivery is not None
        self._gateway.settle(self._delivery, action, reason)

    def ack(self) -> None:
        if not self._settled:
            self._settled = True
            assert self._delivery is not None
            self._gateway.defer_ack(self._delivery)

    def requeue(self) -> None:
        self._settle("requeue")

    def dead_letter(self, reason: str) -> None:
        log.error("message from %s set aside: %s", self.queue, reason)
        self._settle("dead_letter", reason)


class HttpBroker(Broker):
    """What a pilot of ``task_id`` needs of ``gridhpo.protocol.Broker``, through the gateway.
    A subclass, so that the pilot's code takes either unchanged; what a pilot never does with
    a broker (sizes, purges, consumers of several queues) raises ``GatewayError``."""

    def __init__(self, server: str, task_id: int, token: str, *, patience: float = PATIENCE,
                 long_poll: float = LONG_POLL, cafile: str | None = None) -> None:
        # not Broker.__init__: it connects to a kombu broker; every method using it is replaced
        self.url = server
        self.task_id = task_id
        # the gateway takes the token alone (a pilot's credential is TOKEN.KEY: the pilot trusts
        # KEY through this broker's gate, which checks the steering's signature on every point)
        self.token = auth.token_of(token)
        self._control_prefix = control_queue(task_id, "")  # a pilot's control queue is this and its id
        self.gate = auth.Gate()
        self.long_poll = long_poll
        self.client = HttpClient(server, self.token, patience=patience, cafile=cafile, timeout=long_poll + 30.0)
        self.lock = threading.RLock()
        self._held: set[str] = set()
        self._acks: list[str] = []  # acknowledged here, not yet told the gateway
        self._control: dict[str, list[Any]] = {}
        self._control_at: dict[str, float] = {}
        self._fast_until = 0.0

    def _path(self, what: str) -> str:
        return f"{PREFIX}/tasks/{self.task_id}/{what}"

    @property
    def redelivers(self) -> bool:
        """A point whose pilot went silent comes back when its lease at the gateway expires."""
        return True

    def close(self) -> None:
        with self.lock:
            acks, self._acks = self._acks, []
        self.client.patience = min(self.client.patience, 10.0)  # an exit is not held up for long
        try:
            for did in acks:  # so that the gateway does not wait for their leases to end
                self.settle(did, "ack")
        except GatewayError as exc:  # their leases end and the points come back: run twice, counted once
            log.warning("acknowledging %d points at exit failed: %s", len(acks), exc)
        self.client.close()

    def __enter__(self) -> HttpBroker:
        return self

    def _not_here(self, what: str) -> GatewayError:
        return GatewayError(f"{what} is not available through the gateway (a pilot never needs it)")

    def drain_fair(self, queues: list[str], max_messages: int = 500, timeout: float = 0.1,
                   prefetch: int | None = None) -> tuple[list[Delivery], set[str]]:
        raise self._not_here("consuming several queues")

    def stop_consuming(self, queue: str) -> None:
        return None  # nothing is consumed ahead: the gateway holds only what was handed out

    def size(self, queue: str) -> int:
        raise self._not_here("a queue's size")

    def purge(self, queue: str) -> int:
        raise self._not_here("purging a queue")

    def delete(self, queue: str) -> None:
        raise self._not_here("deleting a queue")

    # ------------------------------------------------------------------ points

    def get(self, queue: str) -> Delivery | None:
        if queue.startswith(self._control_prefix):
            return self._next_control(queue.removeprefix(self._control_prefix))
        got = self.drain(queue, 1)
        return got[0] if got else None

    def drain(self, queue: str, max_messages: int = 500, timeout: float = 0.1) -> list[Delivery]:
        """Up to ``max_messages`` points, waiting for the first at most the long-poll time
        (longer than a broker's ``timeout``: waiting at the gateway costs nothing)."""
        if queue != points_queue(self.task_id, self.token):
            raise GatewayError(f"the gateway serves task {self.task_id}'s points, not {queue}")
        acks = self._take_acks()
        body = {"request_id": secrets.token_hex(12), "max": max(1, min(max_messages, 64)),
                "wait": max(timeout, self.long_poll), "acks": acks}
        answer = self.client.request("POST", self._path("points"), body)
        self._acked(acks)
        out: list[Delivery] = []
        for p in _items(answer, "points"):
            with self.lock:
                self._held.add(p["delivery"])
            out.append(HttpDelivery(self.gate.incoming(p["body"]), self, queue, p["delivery"]))
        return out

    def defer_ack(self, delivery: str) -> None:
        """The point's start is reported: the gateway is told with this pilot's next request
        (one request fewer per point; the lease covers the wait)."""
        with self.lock:
            self._acks.append(delivery)

    def _take_acks(self) -> list[str]:
        with self.lock:
            return self._acks[:256]

    def _acked(self, acks: list[str]) -> None:
        with self.lock:
            done = set(acks)
            self._acks = [a for a in self._acks if a not in done]
            self._held -= done

    def settle(self, delivery: str, action: str, reason: str = "") -> None:
        self.client.request("POST", self._path("settle"), {"delivery": delivery, "action": action,
                                                           "reason": reason[:1000]})
        with self.lock:
            self._held.discard(delivery)

    # ------------------------------------------------------------------ events and control

    def publish(self, queue: str, body: dict[str, Any], confirm: bool | None = None, via: str = "") -> None:
        self.publish_many([(queue, body)], confirm)

    def publish_many(self, items: list[tuple[str, dict[str, Any]]], confirm: bool | None = None,
                     via: str = "") -> None:
        """Post the messages to the gateway, in requests of at most ``MAX_MESSAGE_BYTES``; returns
        once the gateway has put them on the events queue."""
        for queue, _ in items:
            if queue != events_queue(self.task_id):
                raise GatewayError(f"the gateway takes task {self.task_id}'s events, not messages for {queue}")
        messages = self.gate.outgoing_many([body for _, body in items])  # codes, never the token
        if any(m["kind"] == "hello" for m in messages if "kind" in m):
            self._fast_until = time.monotonic() + HELLO_WINDOW
        by_pilot: dict[str, list[dict[str, Any]]] = {}
        for m in messages:
            by_pilot.setdefault(str(m["pilot_id"]), []).append(m)
        for pilot_id, mine in by_pilot.items():
            for chunk in _chunks(mine, MAX_MESSAGE_BYTES):
                self.post_events(pilot_id, chunk, confirm is not False)

    def post_events(self, pilot_id: str, messages: list[dict[str, Any]], confirm: bool = True) -> list[Any]:
        """Post ``messages`` (maybe none) for ``pilot_id``; returns the control messages that came back."""
        acks = self._take_acks()
        with self.lock:
            renew = sorted(self._held - set(acks))[:256]
        answer = self.client.request("POST", self._path("events"),
                                     {"pilot_id": pilot_id, "messages": messages, "renew": renew, "acks": acks,
                                      "confirm": confirm})
        self._acked(acks)
        control = list(_items(answer, "control"))
        with self.lock:
            self._control_at[pilot_id] = time.monotonic()
            self._control.setdefault(pilot_id, []).extend(control)
        return control

    def _next_control(self, pilot_id: str) -> HttpDelivery | None:
        with self.lock:
            waiting = self._control.get(pilot_id)
            if not waiting:
                every = HELLO_CONTROL_EVERY if time.monotonic() < self._fast_until else CONTROL_EVERY
                due = time.monotonic() - self._control_at.get(pilot_id, 0.0) >= every
            else:
                due = False
        if due:
            self.post_events(pilot_id, [])
        with self.lock:
            waiting = self._control.get(pilot_id)
            if not waiting:
                return None
            return HttpDelivery(self.gate.incoming(waiting.pop(0)), self, control_queue(self.task_id, pilot_id), None)


def _items(answer: Any, key: str) -> Iterable[Any]:
    if not isinstance(answer, dict) or key not in answer or not isinstance(answer[key], list):
        raise GatewayError(f"the gateway's answer has no {key!r} list: {str(answer)[:200]}")
    return answer[key]  # type: ignore[no-any-return]


def _chunks(messages: list[dict[str, Any]], most: int) -> Iterable[list[dict[str, Any]]]:
    """``messages`` in runs whose JSON is at most ``most`` bytes (a message alone may be more:
    the gateway refuses it with 413, as the steering would set it aside)."""
    run: list[dict[str, Any]] = []
    size = 0
    for m in messages:
        n = len(json.dumps(m)) + 2
        if run and size + n > most:
            yield run
            run, size = [], 0
        run.append(m)
        size += n
    if run:
        yield run
