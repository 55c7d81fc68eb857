"""Delivery: one message received from the broker, with what its consumer does with it:
acknowledge it once its effect is durable, give it back, or set it aside in the dead letters."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from gridhpo.errors import QueueError
from gridhpo.protocol.connection import CONNECTION_ERRORS
from gridhpo.protocol.messages import DEAD_LETTER_QUEUE, MAX_MESSAGE_BYTES, Undecodable, without_secrets
from gridhpo.protocol.routing import preview

if TYPE_CHECKING:
    from gridhpo.protocol.broker import Broker

log = logging.getLogger(__name__)


def received_text(message: Any) -> bytes | str | None:
    """A kombu message's text as received (what its code covers, see protocol/auth.py); None
    when it has none."""
    raw = getattr(message, "body", None)
    return raw if isinstance(raw, (bytes, str)) else None


class Delivery:
    """One received message; ``ack`` once its effect is durable, ``requeue`` to give it back."""

    def __init__(self, body: Any, message: Any, broker: Broker, queue: str = "") -> None:
        self.body = body
        self.queue = queue
        self._message = message
        self._broker = broker

    @property
    def raw(self) -> bytes | str | None:
        """The message's text as received (what its code covers, see protocol/auth.py)."""
        return received_text(self._message)

    @property
    def size(self) -> int:
        """The message's size on the wire, in bytes."""
        return len(self.raw or b"")

    def dead_letter(self, reason: str) -> None:
        """Set the message aside in the dead-letter queue with the reason, and acknowledge it.
        The record keeps no credential: secret fields are dropped, and an undecodable body is
        kept only as a short preview with anything that looks like a secret masked."""
        decoded = not isinstance(self.body, Undecodable)
        raw = self.raw or b""
        record = {
            "reason": reason, "time": time.time(), "queue": self.queue, "size": self.size,
            "content_type": str(getattr(self._message, "content_type", None))[:80],
            "body": without_secrets(self.body) if decoded and self.size <= MAX_MESSAGE_BYTES else None,
            "raw": None if decoded else preview(raw),
        }
        log.error("message from %s set aside in %s: %s", self.queue, DEAD_LETTER_QUEUE, reason)
        try:
            # through the exchange of the queue it came from: a pilot may write only its task's
            self._broker.publish(DEAD_LETTER_QUEUE, record, via=self.queue)
        except QueueError as exc:
            log.error("the dead-letter queue is unreachable too (%s); the message is dropped", exc)
        self.ack()

    def ack(self) -> None:
        with self._broker.lock:
            if self._message.acknowledged:
                return
            try:
                self._message.ack()
            except CONNECTION_ERRORS as exc:
                # the connection it came on is gone: the broker delivers it again, and
                # applying it twice changes nothing
                log.warning("acknowledging a message failed (%s); it will be delivered again", exc)

    def requeue(self) -> None:
        with self._broker.lock:
            if not self._message.acknowledged:
                self._message.requeue()
