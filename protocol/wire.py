"""What every message shares on the wire: the envelope (``kind``, ``v``), the limits of a
body, its decoding, and the field readers every parser uses. A parser built from these
readers raises only ``MessageError``, naming the field it refused."""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard, TypeVar

from gridhpo.errors import MessageError

_M = TypeVar("_M")

# 2: one events queue per task (gridhpo.events.<task>); 3: a signature covers a batch of
# messages (``sig`` holds the root's signature, the leaf index, the batch size and the audit
# path: protocol/auth.py), and an authenticated message's code is its wire text's last member
PROTOCOL_VERSION = 3
MAX_MESSAGE_BYTES = 1 << 20
DEAD_LETTER_QUEUE = "gridhpo.dead-letter"  # malformed or oversized messages, with the reason
MAX_DEPTH = 32  # nesting of a message's JSON: ours never exceed a few levels
JSON_CONTENT_TYPE = "application/json"

# What the bookkeeping can store. A value beyond these limits would fail the steering's
# whole transaction of a round (and every redelivery of it), so the message is refused here.
INT32 = 1 << 31
INT64 = 1 << 63


class Undecodable:
    """The body of a message that is not JSON we accept; its reason is kept for the dead letters."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Undecodable({self.reason!r})"


def decode_body(raw: object, content_type: object, content_encoding: object) -> Any:
    """A message body as we accept it on the wire: JSON text in UTF-8, at most
    ``MAX_MESSAGE_BYTES`` long and ``MAX_DEPTH`` deep. Never raises (and never runs a
    deserialiser other than ``json``): anything else comes back as ``Undecodable``."""
    try:
        if content_type != JSON_CONTENT_TYPE:
            return Undecodable(f"content type {str(content_type)[:80]!r} is not accepted (only {JSON_CONTENT_TYPE})")
        if content_encoding is not None and str(content_encoding).lower().replace("-", "") != "utf8":
            return Undecodable(f"content encoding {str(content_encoding)[:40]!r} is not accepted (only utf-8)")
        if not isinstance(raw, (bytes, str)):
            return Undecodable(f"a body of type {type(raw).__name__} is not accepted")
        if len(raw) > MAX_MESSAGE_BYTES:
            return Undecodable(f"a body of {len(raw)} bytes is over the limit of {MAX_MESSAGE_BYTES}")
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text)
        # the depth is at most the number of brackets: walk only a text that has many
        if text.count("{") + text.count("[") > MAX_DEPTH and (depth := json_depth(value)) > MAX_DEPTH:
            return Undecodable(f"JSON nested {depth} levels deep, over the limit of {MAX_DEPTH}")
        return value
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError: ValueErrors
        return Undecodable(f"not JSON: {type(exc).__name__}: {str(exc)[:200]}")


def json_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests (objects and arrays), measured without recursion so that any
    depth can be measured; the walk stops once it is past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if depth > limit:
            break  # deep enough to refuse: no need to walk the rest
        stack.extend((child, depth + 1) for child in children)
    return deepest


# fields that may hold a credential: never kept in a dead-letter record or a log
SECRET_FIELDS = frozenset({"auth", "token", "password", "secret", "signing_key"})


def without_secrets(value: Any) -> Any:
    """``value`` with every field named in ``SECRET_FIELDS`` removed, at any depth."""
    if isinstance(value, Mapping):
        return {k: without_secrets(v) for k, v in value.items() if str(k).lower() not in SECRET_FIELDS}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def total(parse: Callable[[object], _M]) -> Callable[[object], _M]:
    """``parse`` raising only MessageError: whatever a message holds, a consumer that parses it
    can set it aside with a reason (a RecursionError or OverflowError once escaped and stopped it)."""

    @functools.wraps(parse)
    def wrapped(body: object) -> _M:
        try:
            return parse(body)
        except MessageError:
            raise
        except (ValueError, TypeError, ArithmeticError, RecursionError, KeyError, AttributeError) as exc:
            raise MessageError(f"unparseable message: {type(exc).__name__}: {str(exc)[:200]}") from exc

    return wrapped


def need(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str = "message field") -> Any:
    """The field ``key`` of ``body``, which must be present and of type ``kind`` (a bool is
    never taken for a number)."""
    if key not in body:
        raise MessageError(f"{where} {key!r} is missing")
    value = body[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise MessageError(f"{where} {key!r}: {value!r} has the wrong type")
    return value


def int32(b: Mapping[str, Any], key: str) -> int:
    """An integer field the bookkeeping stores in 32 bits."""
    value = need(b, key, int)
    if not -INT32 <= value < INT32:
        raise MessageError(f"message field {key!r}: {value} is out of the 32-bit range")
    return int(value)


def text(b: Mapping[str, Any], key: str, most: int) -> str:
    value = need(b, key, str)
    if len(value) > most:
        raise MessageError(f"message field {key!r}: longer than {most} characters")
    return str(value)


def auth(b: Mapping[str, Any]) -> str:
    """The token a pilot presents (empty when it has none)."""
    value = b["auth"] if "auth" in b else ""
    if not isinstance(value, str) or len(value) > 128:
        raise MessageError("message field 'auth' must be a string of at most 128 characters")
    return value


def check_envelope(body: object, kind: str) -> Mapping[str, Any]:
    """``body`` as a message of ``kind`` in this side's protocol version."""
    if isinstance(body, Undecodable):
        raise MessageError(body.reason)
    if not isinstance(body, Mapping):
        raise MessageError(f"a {kind} message must be a JSON object, got {type(body).__name__}")
    if body.get("kind") != kind:
        raise MessageError(f"expected a {kind!r} message, got kind {body.get('kind')!r}")
    version = body.get("v")
    if version != PROTOCOL_VERSION:
        raise MessageError(f"protocol version {version!r} is not supported (this side speaks {PROTOCOL_VERSION})")
    return body


def message_kind(body: object) -> str | None:
    """The ``kind`` a message says it is, or None: lets a queue carry several message types."""
    if isinstance(body, Mapping):
        kind = body.get("kind")
        return kind if isinstance(kind, str) else None
    return None


def storable(value: Any, where: str) -> Any:
    """``value`` as both databases store it: integers within 64 bits, NaN and infinities
    (PostgreSQL's JSON refuses them) as null, NUL characters (its text refuses them) as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise MessageError(f"{where}: a {value.bit_length()}-bit integer is out of range")
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {storable(str(k), where): storable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def finite(value: object) -> TypeGuard[int | float]:
    """A JSON number that is finite (never a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
