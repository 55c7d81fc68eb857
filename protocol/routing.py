"""What the broker wiring computes about messages without a connection: which exchange a
queue's messages go through, how a round's messages are shared among queues, what a received
message decodes to, and the preview of an undecodable one kept in the dead letters."""
from __future__ import annotations

import re
from typing import Any

from gridhpo.protocol.fstransport import UNREADABLE_HEADER
from gridhpo.protocol.wire import Undecodable, decode_body

_TASK_QUEUE = re.compile(r"gridhpo\.(?:events|points|control)\.(\d+)(?:\.|$)")


def task_exchange(queue: str) -> str:
    """``gridhpo.task.<id>`` for a queue of task ``id`` (events, points, control), else ""."""
    m = _TASK_QUEUE.match(queue)
    return f"gridhpo.task.{m.group(1)}" if m else ""


def fair_shares(waiting: list[int], total: int) -> list[int]:
    """How many of ``total`` each of several queues gets, ``waiting[i]`` being what queue ``i``
    has: equal shares, the part a short queue cannot use going to the others (max-min fair)."""
    shares = [0] * len(waiting)
    left = total
    order = sorted(range(len(waiting)), key=lambda i: waiting[i])
    for k, i in enumerate(order):
        shares[i] = min(waiting[i], -(-left // (len(waiting) - k)))  # rounded up: none is left over
        left -= shares[i]
    return shares


def decode_message(message: Any, error: BaseException | None = None) -> Any:
    """The body of a received message, decoded by us (kombu is never let deserialise: its
    registry includes pickle); ``Undecodable`` for anything but the JSON we accept."""
    try:
        if error is not None or message.errors:
            exc = error or message.errors[0][1]
            return Undecodable(f"unreadable message: {type(exc).__name__}: {str(exc)[:200]}")
        if UNREADABLE_HEADER in (message.headers or {}):
            return Undecodable(str(message.headers[UNREADABLE_HEADER])[:300])
        if "compression" in (message.headers or {}):
            return Undecodable("compressed messages are not accepted")
        return decode_body(message.body, message.content_type, message.content_encoding)
    except Exception as exc:  # a message object of an unexpected shape: never stop the consumer
        return Undecodable(f"unreadable message: {type(exc).__name__}: {str(exc)[:200]}")


_SECRET_VALUE = re.compile(r"(auth|token|password|passwd|secret)([\"']?\s*[:=]\s*[\"']?)[^\"'\s,;&}]*", re.I)


def preview(raw: object) -> str | None:
    """The start of an undecodable body for the dead letters, with secret-looking values masked."""
    if not isinstance(raw, (bytes, str)):
        return None
    text = raw[:256].decode("utf-8", "replace") if isinstance(raw, bytes) else raw[:256]
    return _SECRET_VALUE.sub(r"\1\2***", text)
