"""An evaluation's whole process tree, found without cgroups.

``killpg`` reaches the evaluation's process group only; a child that called ``setsid`` (or
``setpgid``) leaves it, and an orphan is re-parented away from the tree. So the tree is
followed while the evaluation runs — a ``scan`` (at most once a second) reads the parent
links of all of ``/proc`` and records each descendant of the root, or of one recorded before,
with its start time — and, when the evaluation ends, processes of this user started since
then whose environment carries the attempt's marker (``GRIDHPO_WORKDIR=...``, which every
descendant inherits unless it clears its environment) are taken too: that finds a
double-forked daemon the scans missed. Before a signal each PID's start time is checked
again, so a recycled PID is never hit. Without ``/proc`` only the process group is ended.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)
_PROC = Path("/proc")
SCAN_EVERY = 1.0  # seconds between scans while the evaluation runs (one costs ~20 ms on a busy VM)


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent PID, start time in clock ticks, state) of ``pid``, or None if it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    rest = raw[raw.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(rest[1]), int(rest[19]), rest[0].decode()


def _all_pids() -> list[int]:
    try:
        return [int(n) for n in os.listdir(_PROC) if n.isdigit()]
    except OSError:
        return []


class Descendants:
    """The processes an evaluation (``root``) started, recorded as PID -> start time."""

    def __init__(self, root: int, marker: str | None = None) -> None:
        self.root = root
        self.marker = marker.encode() if marker else None
        st = _stat(root)
        self.since = st[1] if st else 0
        self.known: dict[int, int] = {}
        self._scanned = -math.inf
        self._ended = False

    def scan(self, force: bool = False) -> None:
        """Record the descendants alive now (of the root and of those already recorded); at
        most once per SCAN_EVERY seconds unless ``force``d (a scan reads all of /proc)."""
        now = time.monotonic()
        if not _PROC.is_dir() or (not force and now - self._scanned < SCAN_EVERY):
            return
        self._scanned = now
        parents: dict[int, list[int]] = {}
        for pid in _all_pids():
            st = _stat(pid)
            if st is not None:
                parents.setdefault(st[0], []).append(pid)
        frontier = [self.root, *self.known]
        while frontier:
            for kid in parents.get(frontier.pop(), []):
                if kid not in self.known:
                    self._record(kid)
                    frontier.append(kid)

    def _record(self, pid: int) -> None:
        st = _stat(pid)
        if st is not None:
            self.known[pid] = st[1]

    def _marked(self) -> list[int]:
        """Processes of this user, started since the root, whose environment has the marker."""
        if self.marker is None:
            return []
        uid, me = os.getuid(), os.getpid()
        out = []
        for pid in _all_pids():
            if pid in (me, self.root) or pid in self.known:
                continue
            try:
                if os.stat(_PROC / str(pid)).st_uid != uid:
                    continue
                st = _stat(pid)
                if st is None or st[1] < self.since:
                    continue
                env = (_PROC / str(pid) / "environ").read_bytes()
            except OSError:
                continue
            if self.marker in env.split(b"\0"):
                out.append(pid)
        return out

    def _live(self) -> list[int]:
        """Recorded PIDs still running what was recorded (not a zombie, not a recycled PID)."""
        out = []
        for pid, start in list(self.known.items()):
            st = _stat(pid)
            if st is None or st[1] != start or st[2] in ("Z", "X"):
                # pop, not del: a stop from another thread (the steering closing a task's
                # external steering while its run waits on it) may have dropped it already
                self.known.pop(pid, None)
            else:
                out.append(pid)
        return out

    def kill(self, sig: int) -> None:
        """Send ``sig`` to every recorded descendant still running."""
        for pid in self._live():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def alive(self) -> bool:
        return bool(self._live())

    def end(self, sig: int = signal.SIGKILL) -> None:
        """The evaluation is over: end what it left behind, marked orphans included."""
        if not _PROC.is_dir() or self._ended:
            return
        self._ended = True  # once: every later poll() of an ended evaluation would sweep again
        self.scan(force=True)
        for pid in self._marked():
            self._record(pid)
        left = self._live()
        if left:
            log.info("ending %d processes the evaluation (pid %d) left running: %s", len(left), self.root,
                     " ".join(map(str, left[:20])))
        self.kill(sig)
