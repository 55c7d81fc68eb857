"""``gridhpo run``'s pilots: N ``gridhpo pilot`` processes on this machine, and what their logs
say when they exit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class LocalPilots:
    """N ``gridhpo pilot`` processes on this machine, stopped together."""

    task_id: int
    count: int
    broker_url: str
    log_dir: Path
    extra_args: list[str] = field(default_factory=list)
    token: str | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _log_starts: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GRIDHPO_BROKER=self.broker_url)
        if self.token:
            env["GRIDHPO_TOKEN"] = self.token
        for i in range(self.count):
            logf = (self.log_dir / f"pilot-{self.task_id}-{i}.log").open("ab")
            self._logs.append(logf)
            self._log_starts.append(logf.tell())
            cmd = [sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(self.task_id),
                   "--pilot-id", f"local-{self.task_id}-{i}-{os.getpid()}", "--site", "local", *self.extra_args]
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL))

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)

    def last_lines(self) -> list[str]:
        """Per pilot that exited: its exit status and the last error line of its log (the
        part this run wrote), e.g. ``pilot 0 (exit 1): gridhpo: error: ...``."""
        out = []
        for i, (proc, logf, start) in enumerate(zip(self.procs, self._logs, self._log_starts, strict=True)):
            code = proc.poll()
            if code is None:
                continue
            status = f"exit {code}" if code >= 0 else f"killed by {_signal_name(-code)}"
            out.append(f"pilot {i} ({status}): {_last_error(Path(logf.name), start) or 'its log is empty'}")
        return out

    def last_errors(self) -> str:
        """The pilots' last error lines in one line, the same line once."""
        seen: dict[str, None] = {}
        for line in self.last_lines():
            seen.setdefault(line.split("): ", 1)[-1], None)
        return "; ".join(seen)

    def stop(self, grace: float = 10.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self._logs:
            f.close()


TAIL_BYTES = 16_384  # of a pilot's log: enough for its last lines, bounded however large the log grew
ERROR_MARKS = ("error", "Error", "ERROR", "CRITICAL", "Traceback", "exception", "Exception")


def _last_error(path: Path, start: int) -> str:
    """The last line of the log from ``start`` that names an error, else its last line."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - TAIL_BYTES))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    for line in reversed(lines):
        if any(mark in line for mark in ERROR_MARKS):
            return line[:500]
    return lines[-1][:500] if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
