"""Small helpers the integration tests share."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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
