"""The gateway's side of the broker: points handed out over HTTP under a lease, events passed on.

A point taken for an HTTP pilot stays unacknowledged on the gateway's broker connection
while the pilot holds it: the pilot settles it (acknowledges it once its "started" event is
sent, gives back the task-end marker, sets aside a malformed point), and a lease the pilot
stops renewing expires and the point goes back to the queue. A pilot that took points and
never heard the answer asks again with the same request id and gets the same points (no point
is stranded by a lost response). If the gateway itself dies, RabbitMQ gives the points it held
back at once; the embedded folder queue cannot, and the steering re-sends them after its
``requeue_grace`` as it does for any pilot killed holding one. Once started, an attempt's
lease is its heartbeats: the steering's ``evaluation.lost_after`` re-queues an attempt whose
heartbeats stop, whatever way its pilot talks.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gridhpo.protocol import Broker, control_queue, events_queue, points_queue
from gridhpo.protocol.broker import Delivery, Undecodable

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0  # a point held by a pilot that neither settles nor renews it goes back after this
EMPTY_RECHECK = 0.02  # seconds: long-polls of one queue look at it at most this often while it is empty
MAX_CONTROL = 50  # control messages returned in one answer
# broker connections for events and control messages, a pilot always on the same one (its
# events stay in order): each heartbeat's look at its pilot's control queue is a round trip
# to the broker, which one connection (one lock) made the queue of thousands of pilots
REPORT_CONNECTIONS = 4


@dataclass
class Lease:
    delivery: Delivery
    task_id: int
    request: str
    expires: float


@dataclass
class Taken:
    """The points of one request, in the order taken: (delivery id, message body)."""

    points: list[tuple[str, Any]] = field(default_factory=list)


class Gateway:
    """Thread-safe: the broker has its own lock, the lease table this one. Given a function
    making a broker, it makes several: points on one connection, events and control messages on
    ``report_connections`` others (each pilot on one of them), so that a heartbeat's publish and
    its look at the pilot's control queue never wait behind a long-poll's look at a queue, nor
    the reverse, and the heartbeats of thousands of pilots do not all queue on one lock."""

    def __init__(self, broker: Broker | Callable[[], Broker], lease: float = LEASE_SECONDS,
                 report_connections: int = REPORT_CONNECTIONS) -> None:
        self._broker: Broker | None = broker if isinstance(broker, Broker) else None
        # a given broker serves everything; made ones: points on one, reports on a few
        self._reports: list[Broker | None] = [self._broker] if self._broker is not None else \
            [None] * max(1, report_connections)
        self._make = broker if not isinstance(broker, Broker) else None
        self.lease = lease
        self._lock = threading.Lock()
        self._leases: dict[str, Lease] = {}
        self._requests: dict[tuple[int, str], list[str]] = {}
        self._empty_at: dict[str, float] = {}
        self._looking: dict[str, int] = {}  # queues requests are taking points from now: how many
        self._sweeper: threading.Thread | None = None
        self._closed = threading.Event()

    @property
    def broker(self) -> Broker:
        with self._lock:
            if self._broker is None:
                assert self._make is not None
                self._broker = self._make()
            if self._sweeper is None:
                self._sweeper = threading.Thread(target=self._sweep_loop, name="gateway-leases", daemon=True)
                self._sweeper.start()
            return self._broker

    @property
    def reports(self) -> Broker:
        """The first connection for events and control messages."""
        return self.reports_of("")

    def reports_of(self, pilot_id: str) -> Broker:
        """The connection for the events and control messages of ``pilot_id``: always the same
        one (its events reach the queue in the order sent), spread over the few there are."""
        i = zlib.crc32(pilot_id.encode()) % len(self._reports)
        with self._lock:
            made = self._reports[i]
            if made is None:
                assert self._make is not None
                made = self._reports[i] = self._make()
            return made

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            leases, self._leases = list(self._leases.values()), {}
            self._requests.clear()
        for held in leases:
            self._give_back(held)
        for b in {id(b): b for b in (self._broker, *self._reports) if b is not None}.values():
            b.close()

    # ------------------------------------------------------------------ points

    def take(self, task_id: int, token: str, request: str, most: int, probe: bool = True) -> Taken:
        """Up to ``most`` points of the task, without waiting; the same ones again for a
        request id seen before whose points are still held. A ``probe`` (not woken by
        ``gateway.waiting`` for points known to be ready) gives up at once where the queue was
        just found empty or another request is looking at it."""
        with self._lock:
            again = self._requests.get((task_id, request))
            if again is not None:
                now = time.monotonic()
                out = Taken()
                for did in again:
                    held = self._leases.get(did)
                    if held is not None:
                        held.expires = now + self.lease
                        out.points.append((did, held.delivery.body))
                return out
        queue = points_queue(task_id, token)
        with self._lock:
            # one look at a queue at a time: the long-polls that wake together while another
            # looks wait for their next turn, instead of queueing up on the broker's lock
            if probe and (self.seems_empty(queue) or self._looking.get(queue, 0) > 0):
                return Taken()
            self._looking[queue] = self._looking.get(queue, 0) + 1
        out = Taken()
        try:
            while len(out.points) < most:
                d = self.broker.get(queue)
                if d is None:
                    self._empty_at[queue] = time.monotonic()
                    break
                if isinstance(d.body, Undecodable):
                    d.dead_letter(f"unreadable message on task {task_id}'s point queue: {d.body.reason}")
                    continue
                out.points.append((self._hold(d, task_id, request), d.body))
        finally:
            with self._lock:
                self._looking[queue] -= 1
                if not self._looking[queue]:
                    del self._looking[queue]
        return out

    def knows(self, task_id: int, request: str) -> bool:
        """Points are held for this request (its answer was lost: it is asked again)."""
        with self._lock:
            return (task_id, request) in self._requests

    def looking(self, queue: str) -> bool:
        """A request is taking points from the queue now (read without the lock: a hint)."""
        return queue in self._looking

    def found_empty(self, queue: str) -> None:
        self._empty_at[queue] = time.monotonic()

    def seems_empty(self, queue: str) -> bool:
        """The queue was found empty a moment ago: many long-polls of one task cost the broker
        one look per ``EMPTY_RECHECK``, not one each."""
        return time.monotonic() - self._empty_at.get(queue, 0.0) < EMPTY_RECHECK

    def _hold(self, d: Delivery, task_id: int, request: str) -> str:
        did = secrets.token_urlsafe(16)
        with self._lock:
            self._leases[did] = Lease(d, task_id, request, time.monotonic() + self.lease)
            self._requests.setdefault((task_id, request), []).append(did)
        return did

    def settle(self, task_id: int, delivery: str, action: str, reason: str = "") -> bool:
        """Ack, requeue or dead-letter a point held for a pilot. False for a delivery this
        gateway does not hold (settled already, expired, or taken before a restart: the broker
        gave it back and the steering's events dedupe whatever is run twice)."""
        with self._lock:
            held = self._leases.get(delivery)
            if held is None or held.task_id != task_id:
                return False
            self._forget(delivery, held)
        try:
            if action == "ack":
                held.delivery.ack()
            elif action == "requeue":
                held.delivery.requeue()
                self._empty_at.pop(held.delivery.queue, None)  # it is not empty now
            else:
                held.delivery.dead_letter(f"set aside by a pilot of task {task_id}: {reason}")
        except Exception as exc:  # a lost connection: the broker has the message back, and redelivers it
            log.warning("task %d: settling a point (%s) failed: %s", task_id, action, exc)
        return True

    def ack_all(self, task_id: int, deliveries: list[str]) -> None:
        for did in deliveries:
            self.settle(task_id, did, "ack")

    def renew(self, task_id: int, deliveries: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for did in deliveries:
                held = self._leases.get(did)
                if held is not None and held.task_id == task_id:
                    held.expires = now + self.lease

    def held(self) -> int:
        with self._lock:
            return len(self._leases)

    def _forget(self, did: str, held: Lease) -> None:
        """With the lock held."""
        del self._leases[did]
        key = (held.task_id, held.request)
        ids = self._requests.get(key)
        if ids is not None and not any(i in self._leases for i in ids):
            del self._requests[key]

    def expire(self, now: float | None = None) -> int:
        """Give back the points whose lease ran out; returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            gone = [(did, h) for did, h in self._leases.items() if h.expires <= now]
            for did, h in gone:
                self._forget(did, h)
        for _, h in gone:
            log.warning("task %d: a point's lease expired (its pilot went silent); it goes back to the queue",
                        h.task_id)
            self._give_back(h)
        return len(gone)

    def _give_back(self, held: Lease) -> None:
        try:
            held.delivery.requeue()
            self._empty_at.pop(held.delivery.queue, None)  # it is not empty now
        except Exception as exc:  # the connection is gone, and the broker has it back anyway
            log.warning("giving a point back failed: %s", exc)

    def _sweep_loop(self) -> None:
        while not self._closed.wait(1.0):
            try:
                self.expire()
            except Exception:  # one failure never stops the sweeper: the next second tries again
                log.exception("expiring leases failed")

    # ------------------------------------------------------------------ events and control

    def report(self, task_id: int, pilot_id: str, messages: list[dict[str, Any]], renew: list[str],
               acks: list[str], confirm: bool = True) -> list[Any]:
        """One events request in one go (one thread hop): leases renewed, acks applied, the
        messages passed on; returns the control messages waiting for the pilot."""
        self.renew(task_id, renew)
        self.ack_all(task_id, acks)
        if messages:
            # a heartbeat lost with the broker is replaced by the next one (lost_after is several
            # heartbeats long): waiting for its confirm, the bulk of a busy gateway's work, buys nothing
            self.publish(task_id, messages, confirm and not all(_heartbeat(m) for m in messages), pilot_id)
        return self.control(task_id, pilot_id)

    def publish(self, task_id: int, messages: list[dict[str, Any]], confirm: bool = True, pilot_id: str = "") -> None:
        """Pass a pilot's events (and hellos) on to the task's events queue, unchanged."""
        self.reports_of(pilot_id).publish_many([(events_queue(task_id), m) for m in messages], confirm)

    def control(self, task_id: int, pilot_id: str) -> list[Any]:
        """The steering's messages waiting for this pilot (decisions, verdicts on its token)."""
        out: list[Any] = []
        queue = control_queue(task_id, pilot_id)
        broker = self.reports_of(pilot_id)
        while len(out) < MAX_CONTROL and (d := broker.get(queue)) is not None:
            if isinstance(d.body, Undecodable):
                d.dead_letter(f"unreadable control message for pilot {pilot_id}: {d.body.reason}")
                continue
            d.ack()
            out.append(d.body)
        return out


def _heartbeat(message: dict[str, Any]) -> bool:
    return all(k in message for k in ("kind", "type")) and (message["kind"], message["type"]) == ("event", "heartbeat")
