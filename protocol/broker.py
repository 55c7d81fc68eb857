"""The kombu wiring: one small Broker class over any kombu transport.

Queues are durable and messages persistent; RabbitMQ publishes wait for publisher confirms.
Messages are routed by queue name. On RabbitMQ a task's queues are bound to an exchange of
their own, ``gridhpo.task.<id>``, and messages go through it: RabbitMQ checks write permission
on the exchange, and the default exchange would let any writer reach every queue
(protocol/brokeradmin.py gives each task's pilots their own task's names only). Other
transports use the default exchange, which every kombu transport implements the same way.

A received message is a Delivery (``delivery``); connections are opened by ``connection``.

The embedded default ``filesystem://PATH`` uses kombu's filesystem transport with two fixes
of ours (see ``fstransport``): a message file appears only once fully written, and a reader
claims it by an atomic rename. Like every virtual transport it has no acknowledgements across
processes: a consumer killed holding a message loses it. The bookkeeping is the source of
truth and the steering re-sends such points (see ``steering.service``).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer, Producer

from gridhpo.config import redact
from gridhpo.errors import QueueError
from gridhpo.protocol import auth
from gridhpo.protocol.connection import CONNECTION_ERRORS, connection
from gridhpo.protocol.delivery import Delivery as Delivery  # where the consumers look for it
from gridhpo.protocol.delivery import received_text
from gridhpo.protocol.messages import JSON_CONTENT_TYPE
from gridhpo.protocol.messages import Undecodable as Undecodable  # where the consumers look for it
from gridhpo.protocol.routing import decode_message, task_exchange
from gridhpo.protocol.routing import fair_shares as fair_shares  # where the tests look for it

log = logging.getLogger(__name__)


class Broker:
    """Publish to and receive from named queues. Thread-safe (one lock per connection)."""

    def __init__(self, url: str, *, confirm: bool = True) -> None:
        self.url = url
        self.lock = threading.RLock()
        try:
            self._conn = connection(url, confirm)
        except (TypeError, ValueError) as exc:  # kombu's URL parsing: ?password= gives a TypeError
            raise QueueError(f"broker URL {redact(url)} is not valid: {redact(str(exc))}") from exc
        try:
            self._conn.ensure_connection(max_retries=3, interval_start=0.2, interval_step=0.5)
        except CONNECTION_ERRORS as exc:
            raise QueueError(f"cannot connect to the broker {redact(url)}: {redact(str(exc))}") from exc
        self.confirm = confirm
        self._declared: set[str] = set()
        self._bound: set[tuple[str, str]] = set()  # (queue, exchange) bindings declared
        # publishing on a connection that also consumes makes py-amqp read pending
        # deliveries on every publish: producers get connections of their own, one with
        # publisher confirms and one without (see publish_many)
        self._producers: dict[bool, Producer] = {}
        self._pub_conns: dict[bool, Connection] = {}
        self._consumers: dict[str, tuple[Consumer, list[Delivery]]] = {}
        self.gate = auth.Gate()  # what goes out is authenticated, what comes in checked

    @property
    def redelivers(self) -> bool:
        """True where the broker gives back a message whose consumer died (AMQP)."""
        return str(self._conn.transport.driver_type) == "amqp"

    def close(self) -> None:
        with self.lock:
            for consumer, _ in self._consumers.values():
                try:
                    consumer.cancel()
                except CONNECTION_ERRORS as exc:
                    log.debug("cancelling a consumer on close failed: %s", exc)
            self._consumers.clear()
            for conn in self._pub_conns.values():
                conn.release()
            self._conn.release()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _queue(self, name: str) -> Queue:
        return Queue(name, routing_key=name, durable=True, auto_delete=False)

    def _declare(self, name: str, exchange: str = "") -> None:
        if name not in self._declared:
            self._queue(name)(self._conn.default_channel).declare()
            self._declared.add(name)
        if exchange and (name, exchange) not in self._bound:
            channel = self._conn.default_channel
            Exchange(exchange, type="direct", durable=True)(channel).declare()
            channel.queue_bind(queue=name, exchange=exchange, routing_key=name)
            self._bound.add((name, exchange))

    def _exchange(self, queue: str, via: str = "") -> str:
        """The exchange a message for ``queue`` goes through: on RabbitMQ, its task's (see
        ``task_exchange``), so that broker permissions can keep a task's pilots to it; the
        default exchange, which any writer can route to any queue, otherwise."""
        return task_exchange(via or queue) if self.redelivers else ""

    def _reconnect(self, exc: BaseException) -> None:
        log.warning("broker %s: connection lost (%s); reconnecting", redact(self.url), exc)
        self._declared.clear()
        self._bound.clear()
        self._producers.clear()
        self._consumers.clear()
        for conn in (self._conn, *self._pub_conns.values()):
            try:
                conn.close()
            except CONNECTION_ERRORS as close_exc:
                log.debug("closing the broken connection failed: %s", close_exc)
        self._pub_conns.clear()
        try:
            self._conn.ensure_connection(max_retries=20, interval_start=0.5, interval_step=1.0, interval_max=5.0)
        except CONNECTION_ERRORS as again:
            raise QueueError(f"broker {redact(self.url)} unreachable: {again}") from again

    def _retrying(self, what: str, op: Callable[[], Any]) -> Any:
        for attempt in range(3):
            try:
                return op()
            except CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise QueueError(f"{what} on {redact(self.url)} failed: {exc}") from exc
                self._reconnect(exc)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ API

    def publish(self, queue: str, body: dict[str, Any], confirm: bool | None = None, via: str = "") -> None:
        """Publish ``body`` to ``queue``; ``via``: the queue whose task's exchange it goes
        through, when ``queue`` belongs to no task (the dead letters)."""
        self.publish_many([(queue, body)], confirm, via)

    def publish_many(self, items: list[tuple[str, dict[str, Any]]], confirm: bool | None = None,
                     via: str = "") -> None:
        """Publish each body to its queue. With confirms (the broker's default) it returns once
        the broker holds them all; ``confirm=False`` is for messages whose loss the
        bookkeeping detects anyway (they are sent again), where the wait is pure cost."""
        if not items:
            return
        confirm = self.confirm if confirm is None else confirm and self.confirm
        # authenticated messages come as their text, serialised once (protocol/auth.py)
        wire = list(zip([q for q, _ in items], self.gate.wire_many([b for _, b in items]), strict=True))

        def op() -> None:
            producer = self._producers.get(confirm)
            if producer is None:
                conn = self._pub_conns.get(confirm)
                if conn is None:
                    conn = self._pub_conns[confirm] = connection(self.url, confirm)
                producer = self._producers[confirm] = Producer(conn.default_channel)
            for queue, body in wire:
                exchange = self._exchange(queue, via)
                self._declare(queue, exchange)
                # no kombu retry around each message: _retrying reconnects and publishes the
                # batch again (a message sent twice is applied once)
                if isinstance(body, bytes):
                    producer.publish(body, routing_key=queue, exchange=exchange, content_type=JSON_CONTENT_TYPE,
                                     content_encoding="utf-8", delivery_mode=2)
                else:
                    producer.publish(body, routing_key=queue, exchange=exchange, serializer="json", delivery_mode=2)

        with self.lock:
            self._retrying("publish", op)

    def get(self, queue: str) -> Delivery | None:
        """Pull one message without waiting (a consumer never holds more than it runs)."""

        def op() -> Delivery | None:
            self._declare(queue)
            # not Queue.get: it re-raises a body kombu could not decompress; the message is
            # built without decoding it, and _decode never raises
            channel = self._conn.default_channel
            raw = channel.basic_get(queue=queue, no_ack=False)
            if raw is None:
                return None
            msg = channel.message_to_python(raw)
            return Delivery(self.gate.incoming(decode_message(msg), received_text(msg)), msg, self, queue)

        with self.lock:
            return self._retrying("get", op)  # type: ignore[no-any-return]

    def wait(self, queue: str, timeout: float, poll: float = 0.05) -> Delivery | None:
        """``get`` until a message comes or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.get(queue)
            if d is not None or time.monotonic() >= deadline:
                return d
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    def drain(self, queue: str, max_messages: int = 500, timeout: float = 0.1) -> list[Delivery]:
        """Receive up to ``max_messages`` from ``queue``, waiting at most ``timeout`` for the
        first. The consumer never holds more than that (a pilot takes only what it runs)."""
        return self.drain_fair([queue], max_messages, timeout, prefetch=max_messages)[0]

    def drain_fair(self, queues: list[str], max_messages: int = 500, timeout: float = 0.1,
                   prefetch: int | None = None) -> tuple[list[Delivery], set[str]]:
        """Receive up to ``max_messages`` from several queues, shared evenly among them (a queue
        with fewer waiting leaves the rest of its share to the others), waiting at most
        ``timeout`` for the first. Returns them with the queues that had more than they got.
        Each queue's consumer holds up to ``prefetch`` messages (by default twice
        ``max_messages``, so that what is left over shows a queue has more waiting)."""
        if not queues:
            time.sleep(timeout)
            return [], set()

        def op() -> tuple[list[Delivery], set[str]]:
            bufs = [self._buffer(q, prefetch or 2 * max_messages) for q in queues]
            deadline = time.monotonic() + timeout
            # read all that has arrived, not just a batch: one connection brings every queue's
            # messages in the order sent, and a quiet queue's few may be behind a flood (the
            # consumers' prefetch bounds what can arrive)
            while True:
                waiting = any(bufs)
                remaining = deadline - time.monotonic() if not waiting else 0.0
                try:
                    self._conn.drain_events(timeout=max(remaining, 0.001))
                except TimeoutError:
                    if waiting or time.monotonic() >= deadline:
                        break
            out: list[Delivery] = []
            more: set[str] = set()
            for queue, buf, n in zip(queues, bufs, fair_shares([len(b) for b in bufs], max_messages), strict=True):
                out += buf[:n]
                del buf[:n]
                if buf:
                    more.add(queue)
            return out, more

        with self.lock:
            return self._retrying("consume", op)  # type: ignore[no-any-return]

    def stop_consuming(self, queue: str) -> None:
        """Cancel the consumer of ``queue``; what it held and did not hand out goes back."""
        with self.lock:
            held = self._consumers.pop(queue, None)
            if held is None:
                return
            consumer, buf = held
            try:
                consumer.cancel()  # deliveries already on their way land in buf meanwhile
                for d in buf:
                    d.requeue()
            except CONNECTION_ERRORS as exc:
                # the connection is gone, and with it what the consumer held: the broker has it back
                log.warning("broker %s: cancelling the consumer of %s failed: %s", redact(self.url), queue, exc)

    def _buffer(self, queue: str, prefetch: int) -> list[Delivery]:
        """The messages received from ``queue`` and not handed out yet; consumes it from now on."""
        held = self._consumers.get(queue)
        if held is not None and held[0].channel is not self._conn.default_channel:
            # kombu re-opened the connection by itself (after a failed ack, say): the
            # consumer died with the old channel and nothing would ever arrive again
            log.warning("broker %s: the connection was re-opened; consuming %s again", redact(self.url), queue)
            del self._consumers[queue]
        if queue not in self._consumers:
            self._declare(queue)
            buf: list[Delivery] = []

            def on_message(message: Any, exc: BaseException | None = None) -> None:
                # called inside drain_events: raising here would be taken for a lost
                # connection, and the message would come back after every reconnection
                try:
                    body = self.gate.incoming(decode_message(message, exc), received_text(message))
                except Exception as error:  # never raise inside drain_events (see above)
                    body = Undecodable(f"unverifiable message: {type(error).__name__}")
                buf.append(Delivery(body, message, self, queue))

            # on_message: kombu hands over the message undecoded (with callbacks= it would
            # deserialise it inside drain_events); on_decode_error: a body it could not even
            # decompress
            consumer = Consumer(
                self._conn.default_channel, queues=[self._queue(queue)], on_message=on_message,
                on_decode_error=on_message, accept=[JSON_CONTENT_TYPE], prefetch_count=prefetch,
            )
            consumer.consume()
            self._consumers[queue] = (consumer, buf)
        return self._consumers[queue][1]

    def size(self, queue: str) -> int:
        """Messages waiting in ``queue`` (not counting those held by consumers)."""

        def op() -> int:
            ch = self._conn.default_channel
            result = self._queue(queue)(ch).queue_declare(passive=False)
            self._declared.add(queue)
            return int(result.message_count) if result else 0

        with self.lock:
            return self._retrying("size", op)  # type: ignore[no-any-return]

    def purge(self, queue: str) -> int:
        def op() -> int:
            self._declare(queue)
            return int(self._queue(queue)(self._conn.default_channel).purge() or 0)

        with self.lock:
            return self._retrying("purge", op)  # type: ignore[no-any-return]

    def delete(self, queue: str) -> None:
        def op() -> None:
            self._queue(queue)(self._conn.default_channel).delete()
            self._declared.discard(queue)
            self._bound = {b for b in self._bound if b[0] != queue}

        with self.lock:
            self._retrying("delete", op)
