"""kombu's py-amqp transport, with received messages never inflated.

kombu's ``Message`` decompresses a body whose ``compression`` header is set as it is built,
before any consumer code runs: a small message from anyone who can publish would inflate to
any size. Here the header is taken off first and the message marked unreadable (compressed
messages are not part of the protocol), so the consumer dead-letters it as it is.
"""
from __future__ import annotations

from typing import Any

from kombu.transport import pyamqp

from gridhpo.protocol.fstransport import UNREADABLE_HEADER


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
