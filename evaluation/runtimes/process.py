"""The plain-process runtime: the command runs in a shell in the work directory.

The evaluation gets a session and process group of its own, and its whole process tree is
ended with it, children that called ``setsid`` included (``proctree``). ``python`` of the
pilot's own interpreter comes first on PATH, so a task's ``python train.py`` runs where
gridhpo is installed.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from gridhpo.errors import EvaluationError
from gridhpo.evaluation.environment import evaluation_environment
from gridhpo.evaluation.runtimes._base import Handle, Job, Runtime
from gridhpo.evaluation.runtimes.proctree import Descendants

log = logging.getLogger(__name__)


TAIL_BYTES = 64 << 10  # of stderr.log / stdout.log read for a failed point's tail


def tail(path: Path, lines: int, limit: int = TAIL_BYTES) -> str:
    """The last ``lines`` lines among the last ``limit`` bytes of ``path``: a log of any size
    (a gigabyte without a newline) costs one seek and one bounded read."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            raw = f.read(limit)
    except OSError:
        return ""
    text = raw.decode("utf-8", errors="replace")
    return "".join(text.splitlines(keepends=True)[-lines:])


class ProcessHandle(Handle):
    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path) -> None:
        self.proc = proc
        self.workdir = workdir
        self.tree = Descendants(proc.pid, marker=f"GRIDHPO_WORKDIR={workdir}")

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is None:
            self.tree.scan()
        return code

    def _signal(self, sig: int) -> None:
        self.tree.scan()
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass  # it ended by itself meanwhile
        self.tree.kill(sig)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return self.tree.alive()
        except PermissionError:  # a member changed its user: it is still there
            return True
        return True

    def stop(self, grace: float) -> int:
        """SIGTERM to the whole process group, then wait for every member, not only the shell:
        ``python train.py`` run by ``sh -c`` may still be saving its checkpoint when the shell
        has already gone."""
        if self.proc.poll() is None or self._group_alive():
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (self.proc.poll() is None or self._group_alive()):
                time.sleep(0.02)
            if self.proc.poll() is None or self._group_alive():
                log.warning("evaluation pid %d ignored SIGTERM for %.0fs: killed", self.proc.pid, grace)
        self._signal(signal.SIGKILL)
        return self.proc.wait()

    def output_tail(self, lines: int = 20) -> str:
        return tail(self.workdir / "stderr.log", lines) or tail(self.workdir / "stdout.log", lines)

    def cleanup(self) -> None:
        """Also ends whatever the evaluation left running (after its outcome is reported: the
        sweep reads all of /proc)."""
        if self.proc.poll() is None:
            self.stop(0)
        self.tree.end(signal.SIGKILL)


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(self) -> None:
        self._live: list[ProcessHandle] = []

    def check(self, job: Job) -> None:
        if not job.command:
            raise EvaluationError("the process runtime needs evaluation.command")

    def start(self, job: Job) -> Handle:
        self.check(job)
        assert job.command is not None
        return self.spawn(job, job.command, evaluation_environment(job.env), f"{job.command!r}")

    def spawn(self, job: Job, args: str | list[str], env: dict[str, str], what: str) -> ProcessHandle:
        """Start ``args`` (a shell command, or an argv) in the work directory, in a process
        group of its own, with stdout and stderr to files there."""
        out = (job.workdir / "stdout.log").open("wb")
        err = (job.workdir / "stderr.log").open("wb")
        try:
            proc = subprocess.Popen(args, shell=isinstance(args, str), cwd=job.workdir, env=env, stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise EvaluationError(f"cannot start {what}: {exc}") from exc
        finally:
            out.close()
            err.close()
        handle = ProcessHandle(proc, job.workdir)
        self._live = [h for h in self._live if h.poll() is None] + [handle]
        return handle

    def close(self) -> None:
        for h in self._live:
            h.cleanup()
        self._live.clear()


def wait(handle: Handle, timeout: float) -> int | None:
    """Poll ``handle`` until it ends or ``timeout`` passes (tests and simple callers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = handle.poll()
        if code is not None:
            return code
        time.sleep(0.02)
    return handle.poll()
