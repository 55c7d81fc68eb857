"""kombu's py-amqp transport, made safe against what anyone who can publish may send.

kombu's ``Message`` decompresses a body whose ``compression`` header is set as it is built,
before any consumer code runs: a small message would inflate to any size. Here the header is
taken off first and the message marked unreadable (compressed messages are not part of the
protocol), so the consumer dead-letters it as it is.

py-amqp reads a message's headers table recursively while it reads the frames, inside
``drain_events``: headers nested a few thousand deep raise RecursionError there, which
stopped the consumer at every delivery of the message. Such a table is replaced by our
"unreadable" marker (the table's length prefix says where it ends). A property it cannot
build at all (a timestamp of 2**63 raised OverflowError there) marks the message unreadable.
"""
from __future__ import annotations

import struct
from struct import unpack_from
from typing import Any

from amqp import serialization
from amqp.spec import Basic
from kombu.transport import pyamqp

from gridhpo.protocol.fstransport import UNREADABLE_HEADER

_decode_basic_properties = serialization.PROPERTY_CLASSES[Basic.CLASS_ID]
_TOO_DEEP: bytes = serialization.dumps("F", [{UNREADABLE_HEADER: "message headers nested too deep"}])


def _without_headers(buf: bytes, offset: int) -> bytes:
    """``buf`` with the headers table of the basic properties at ``offset`` replaced."""
    flags, = unpack_from(">H", buf, offset)
    pos = offset + 2
    for bit in (0x8000, 0x4000):  # content type, content encoding: short strings before the table
        if flags & bit:
            pos += 1 + buf[pos]
    length, = unpack_from(">I", buf, pos)
    return bytes(buf[:pos]) + _TOO_DEEP + bytes(buf[pos + 4 + length:])


def _decode_properties(buf: bytes, offset: int) -> tuple[dict[str, Any], int]:
    try:
        return _decode_basic_properties(buf, offset)  # type: ignore[no-any-return]
    except RecursionError:
        return _decode_basic_properties(_without_headers(buf, offset), offset)  # type: ignore[no-any-return]
    except (OverflowError, ValueError, OSError, struct.error) as exc:
        # a header py-amqp cannot even build (a timestamp of 2**63) raised inside drain_events
        # too: the message is marked unreadable (py-amqp does not use the offset returned)
        return {"headers": {UNREADABLE_HEADER: f"message properties unreadable ({type(exc).__name__})"}}, len(buf)


# py-amqp looks the decoder up here for every message it reads (a process-wide table: the
# replacement differs only for a table too deep to read)
serialization.PROPERTY_CLASSES[Basic.CLASS_ID] = _decode_properties


class Message(pyamqp.Message):
    def __init__(self, msg: Any, channel: Any = None, **kwargs: Any) -> None:
        headers = msg.properties.get("application_headers")
        if isinstance(headers, dict) and "compression" in headers:
            msg.properties["application_headers"] = {
                **{k: v for k, v in headers.items() if k != "compression"},
                UNREADABLE_HEADER: "compressed messages are not accepted",
            }
        super().__init__(msg, channel, **kwargs)


class Channel(pyamqp.Channel):
    Message = Message


class Connection(pyamqp.Connection):
    Channel = Channel


class Transport(pyamqp.Transport):
    Connection = Connection


class SSLTransport(pyamqp.SSLTransport):
    Connection = Connection
