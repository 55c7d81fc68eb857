"""The queue contract (gridhpo.testing.queues), the same suite over every transport we ship: the embedded folder
transport and RabbitMQ (a real server, a fresh virtual host per test)."""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridhpo.errors import QueueError
from gridhpo.protocol import Broker
from gridhpo.protocol.broker import Delivery, fair_shares
from gridhpo.testing.queues import QueueContract
from tests.helpers import BOMB, poison, publish_raw
from tests.servers import rabbitmq_vhost


@pytest.fixture(params=["filesystem", pytest.param("amqp", marks=pytest.mark.integration)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "filesystem":
        yield f"filesystem://{tmp_path / 'q'}"
    else:
        with rabbitmq_vhost() as u:
            yield u


class TestQueues(QueueContract):
    """The ``url`` fixture above: the embedded folder transport, RabbitMQ."""


def test_fair_shares_give_what_a_short_queue_leaves_to_the_others() -> None:
    assert fair_shares([50, 3], 20) == [17, 3]
    assert fair_shares([100, 100], 21) in ([11, 10], [10, 11])
    assert fair_shares([5, 5, 5], 20) == [5, 5, 5]
    assert fair_shares([0, 40, 7, 40], 30) == [0, 12, 7, 11]
    assert fair_shares([], 10) == []


def test_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(QueueError, match=r"cannot connect to the broker amqp://guest:\*\*\*@127.0.0.1:1//"):
        Broker("amqp://guest:secret@127.0.0.1:1//")


# ----------------------------------------------------------------------------- poison messages

def receive(b: Broker, how: str, n: int) -> list[Delivery]:
    """``n`` messages from the queue ``ev``, pulled one by one (``get``) or from a consumer (``drain``)."""
    out: list[Delivery] = []
    deadline = time.monotonic() + 10
    while len(out) < n and time.monotonic() < deadline:
        out += b.drain("ev", 10, timeout=0.5) if how == "drain" else [d for d in [b.wait("ev", 0.5)] if d]
    return out


@pytest.mark.parametrize("how", ["get", "drain"])
def test_poison_messages_come_undecodable_and_the_consumer_goes_on(url: str, tmp_path: Path, how: str) -> None:
    """kombu used to deserialise inside drain_events (pickle included): a message it could not
    decode raised there, was taken for a lost connection and stopped the consumer at every
    restart. Every such message now comes as Undecodable with its reason, and nothing is unpickled."""
    from gridhpo.protocol.broker import Undecodable
    from gridhpo.protocol.messages import DEAD_LETTER_QUEUE

    marker = tmp_path / "unpickled"
    with Broker(url) as b:
        b.purge("ev")
        reasons = poison(url, "ev", marker)
        b.publish("ev", {"ok": 1, "auth": "the-token"})
        deliveries = receive(b, how, 5)
        got, sizes = [d.body for d in deliveries], [d.size for d in deliveries]
        for d in deliveries:
            d.dead_letter(d.body.reason if isinstance(d.body, Undecodable) else "refused")
        assert [type(x).__name__ for x in got] == ["Undecodable"] * 4 + ["dict"]
        for body, reason in zip(got, reasons, strict=False):
            assert reason in body.reason
        assert got[4] == {"ok": 1, "auth": "the-token"}
        assert sizes[3] < BOMB // 100, "the compressed body was inflated"
        records = []
        while (d := b.wait(DEAD_LETTER_QUEUE, timeout=2)) is not None:
            records.append(d.body)
            d.ack()
            if len(records) == 5:
                break
    assert not marker.exists(), "a pickle was loaded"
    assert [r["reason"] for r in records[:4]] == [g.reason for g in got[:4]]
    assert records[0]["content_type"] == "application/x-python-serialize" and records[0]["body"] is None
    assert records[4]["body"] == {"ok": 1}, "a dead-letter record keeps no token"
    assert "the-token" not in json.dumps(records)


def test_a_dead_letter_preview_masks_what_looks_like_a_secret(url: str) -> None:
    from gridhpo.protocol.messages import DEAD_LETTER_QUEUE

    with Broker(url) as b:
        b.purge("ev")  # declared: RabbitMQ drops what goes to a queue that does not exist
        publish_raw(url, "ev", b'{"auth": "tok-123", "token":"tok-456", "x": [' + b"[" * 40 + b"]" * 40 + b"]}",
                    "application/json")
        d = b.wait("ev", timeout=5)
        assert d is not None
        d.dead_letter("too deep")
        rec = b.wait(DEAD_LETTER_QUEUE, timeout=5)
        assert rec is not None
        assert "tok-" not in rec.body["raw"] and '"auth": "***' in rec.body["raw"]


def plant(b: Broker, messages: Path) -> None:
    """Files anyone who can write the queue folder could put there, then a real message."""
    (messages / "00000000000000000001_a.ev.msg").write_bytes(b"not json at all")
    (messages / "00000000000000000002_b.ev.msg").write_text(json.dumps({"body": "x"}))  # no properties
    (messages / "00000000000000000003_c.ev.msg").mkdir()
    (messages / "00000000000000000004_d.ev.msg").symlink_to("/dev/zero")
    os.mkfifo(messages / "00000000000000000005_e.ev.msg")
    (messages / "00000000000000000006_f.ev.msg").write_text("[" * 5000 + "]" * 5000)
    (messages / "00000000000000000007_g.ev.msg").write_text(json.dumps(
        {"body": "!!", "properties": {"body_encoding": "base64"}}))
    b.publish("ev", {"ok": 1})
    [real] = [p for p in messages.iterdir() if not p.name.startswith("0000000000000000000")]
    real.rename(messages / f"9{real.name[1:]}")  # sorts after the planted ones


@pytest.mark.parametrize("how", ["get", "drain"])
def test_files_planted_in_the_folder_queue_are_set_aside(tmp_path: Path, how: str) -> None:
    """Whoever can write the queue folder can plant anything: each is handed over as undecodable
    with its reason, and the real message after them still arrives."""
    from gridhpo.protocol.broker import Undecodable

    folder = tmp_path / "q"
    with Broker(f"filesystem://{folder}") as b:
        plant(b, folder / "messages")
        deliveries = receive(b, how, 8)
        got = [d.body for d in deliveries]
        for d in deliveries:
            d.ack()
        assert [isinstance(x, Undecodable) for x in got] == [True] * 7 + [False], got
        assert got[7] == {"ok": 1}
        reasons = " | ".join(x.reason for x in got[:7])
        for expected in ("not JSON", "not a message envelope", "cannot open", "not a regular file",
                         "not valid base64"):
            assert expected in reasons, reasons
        assert not list((folder / "messages").iterdir()) and not list((folder / "claimed").iterdir())


@pytest.mark.parametrize("how", ["get", "drain"])
def test_headers_nested_deep_stop_no_consumer(url: str, how: str) -> None:
    """py-amqp read such headers recursively inside drain_events: the RecursionError stopped the
    consumer at every delivery of the message."""

    from gridhpo.protocol.broker import Undecodable

    headers: dict[str, Any] = {}
    for _ in range(3000):
        headers = {"a": headers}
    with Broker(url) as b:
        b.purge("ev")
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(20_000)  # the attacker's client writes them recursively too
        try:
            publish_raw(url, "ev", b'{"x": 1}', "application/json", headers={"deep": headers})
        finally:
            sys.setrecursionlimit(limit)
        b.publish("ev", {"ok": 1})
        got = [d.body for d in receive(b, how, 2)]
    # py-amqp's reader and the folder queue's JSON reader each say it their way
    assert isinstance(got[0], Undecodable), got
    assert "headers nested too deep" in got[0].reason or "not JSON: RecursionError" in got[0].reason
    assert got[1:] == [{"ok": 1}]


def test_a_timestamp_beyond_any_date_marks_the_message_unreadable() -> None:
    """The attack: py-amqp builds a datetime of every timestamp while it reads the frames, inside
    drain_events; 2**63 raised OverflowError there, which stopped the consumer at every delivery
    of the message (as headers nested too deep did). Our decoder marks it unreadable instead,
    and the consumer dead-letters it as it does those (test above)."""
    from amqp import serialization
    from amqp.spec import Basic

    import gridhpo.protocol.amqptransport  # noqa: F401  (installs our decoder)
    from gridhpo.protocol.fstransport import UNREADABLE_HEADER

    table = b"\x01kT" + (1 << 63).to_bytes(8, "big")  # headers {"k": a timestamp of 2**63}
    frame = (0x2000).to_bytes(2, "big") + len(table).to_bytes(4, "big") + table
    props, _ = serialization.PROPERTY_CLASSES[Basic.CLASS_ID](frame, 0)
    assert "message properties unreadable (OverflowError)" in props["headers"][UNREADABLE_HEADER]
