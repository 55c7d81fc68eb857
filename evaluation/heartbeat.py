"""Heartbeats of the running attempt, from a thread of their own.

Nothing the pilot's loop does — forwarding a flood of metric lines, uploading a large
checkpoint, reading output — can then delay a heartbeat past ``lost_after`` and get a
healthy point declared lost. The broker is thread-safe (one lock, held per publish).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from gridhpo.errors import GridHPOError

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``send`` every ``every`` seconds from a daemon thread, from ``start`` until ``stop``."""

    def __init__(self, send: Callable[[], None], every: float, name: str = "heartbeat") -> None:
        self._send = send
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.sent = 0

    def _run(self) -> None:
        while not self._stopped.wait(self._every):
            try:
                self._send()
                self.sent += 1
            except GridHPOError as exc:
                # the broker is unreachable: the next beat tries again; the steering's
                # lost_after decides what a long outage means
                log.warning("heartbeat not sent: %s", exc)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """No beat is sent after this returns (a beat after the final event would be harmless
        but confusing in the log)."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
