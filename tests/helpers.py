"""Small helpers the integration tests share."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gridhpo.bookkeeping import Repository
from gridhpo.protocol import Broker
from gridhpo.steering.service import Steering


def until(check: Callable[[], object], timeout: float, what: str, every: float = 0.1) -> None:
    """Wait until ``check()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


@contextmanager
def steering(repo: Repository, broker_url: str, tid: int) -> Iterator[threading.Event]:
    """A steering serving task ``tid`` in a thread, until the task ends or the block is left."""
    stop = threading.Event()
    broker = Broker(broker_url)
    thread = threading.Thread(target=Steering(repo, broker, dispatch_only={tid}).run,
                              kwargs={"stop": stop, "until_done": {tid}}, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
        broker.close()


def process_ended(pid: int) -> bool:
    """No such process, or a zombie its (new) parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


class _Opens:
    """A pickle whose loading would create ``path``: proof that nothing unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def publish_raw(url: str, queue: str, body: bytes, content_type: str, encoding: str = "utf-8",
                headers: dict[str, Any] | None = None) -> None:
    """Publish bytes as any client of the broker can, with whatever content type it claims
    (the queue must exist: RabbitMQ drops what goes to a queue that does not)."""
    from kombu.messaging import Producer

    from gridhpo.protocol.connection import connection as _connection

    conn = _connection(url, False)
    try:
        Producer(conn.default_channel).publish(body, routing_key=queue, exchange="", content_type=content_type,
                                               content_encoding=encoding, headers=headers or {})
    finally:
        conn.release()


BOMB = 50_000_000
# what each poison message below is dead-lettered for
POISON_REASONS = ["content type 'application/x-python-serialize' is not accepted", "not JSON: UnicodeDecodeError",
                  "JSON nested 33 levels deep", "compressed messages are not accepted"]


def poison(url: str, queue: str, marker: Path, compressed: bool = True) -> list[str]:
    """Publish the messages that once stopped a consumer for good (a pickle whose loading
    creates ``marker``, bytes labelled JSON, a 600-deep JSON, a compression bomb); returns the
    reasons they are set aside for."""
    import pickle
    import zlib

    with Broker(url) as b:
        b.size(queue)  # declares it
    publish_raw(url, queue, pickle.dumps(_Opens(marker)), "application/x-python-serialize", "binary")
    publish_raw(url, queue, b"\xff\xfe not JSON {", "application/json")
    publish_raw(url, queue, b"[" * 600 + b"]" * 600, "application/json")
    if not compressed:
        return POISON_REASONS[:3]
    # 50 MB of blanks in 50 KB: kombu used to inflate it before any of our code ran
    publish_raw(url, queue, zlib.compress(b" " * BOMB), "application/json",
                headers={"compression": "application/x-gzip"})
    return POISON_REASONS
