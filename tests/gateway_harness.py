"""A pilot gateway for the tests: in a thread (uvicorn), or as a process that can be SIGKILLed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers import free_port, port_open


def _wait_open(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port, 0.2):
        assert proc is None or proc.poll() is None, f"the gateway exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"the gateway did not listen on port {port} in {timeout:g}s"
        time.sleep(0.05)


class GatewayProcess:
    """``python -m gridhpo.gateway`` on a fixed loopback port, so it can be killed and restarted."""

    def __init__(self, db: str, broker: str, log: Path) -> None:
        self.db, self.broker, self.log = db, broker, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridhpo.gateway", "--db", self.db, "--broker", self.broker,
                 "--port", str(self.port)], stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(os.environ))
        _wait_open(self.port, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def gateway_process(db: str, broker: str, log: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(db, broker, log)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free loopback port; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_open(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
