"""The user's own steering, run as iDDS runs a steering container: ``optimiser.backend: steering``.

The contract is iDDS's (HSF/iDDS ``docs/source/usecases/hyperparemeter_optimization.rst`` and
``atlas/lib/idds/atlas/workflow/atlashpowork.py``), so a steering written for ATLAS runs unchanged:

- each call runs ``command`` in a fresh folder, with ``%IN``, ``%OUT``, ``%NUM_POINTS`` and
  ``%MAX_POINTS`` replaced (and ``%SEED``, our extension: the task's ``optimiser.seed``);
- ``%IN`` (``idds_input.json``, iDDS's name) holds ``{"points": [[point, loss_or_null], ...],
  "opt_space": ...}``: every point asked so far in number order, with its value in the
  minimised direction, ``null`` while in flight (or failed);
- the steering writes a JSON list of new points to ``%OUT`` (``output.json``, phpo's name);
  ``[]`` ends the search.

With ``image`` the command runs in that image through the Docker API (the evaluation runtime
of evaluation/runtimes/docker.py: the folder is mounted at its own path and is the working
directory, so ``$PWD/%IN`` holds inside and outside); without, as a process in the host's shell
(evaluation/runtimes/process.py). A call that exits non-zero, times out or writes no readable
``%OUT`` is run again, ``retries`` times (3: iDDS gives up after the fourth failed run in a row),
then the task fails with the steering's last reason and stderr tail. A point outside the search
space, or an output that is not a list of points, fails the task at once: running the same
steering again on the same input would not make it right. Points already asked are dropped
(logged); a call that proposes nothing new counts as a failed run.

One call asks for ``points_per_call`` points (default ``parallel + min_queued``, one dispatch
depth) and the extra ones wait here for the next asks: the steering runs again only when they
are handed out. The backend runs in the driver's worker thread (it is not ``cheap``), never on
the event path.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridhpo.errors import ConfigError, GridHPOError, OptimiserError
from gridhpo.evaluation import runtimes
from gridhpo.evaluation.runtimes import Handle, Job, Runtime
from gridhpo.evaluation.runtimes.docker import DockerRuntime
from gridhpo.steering.optimisers._base import Optimiser, Trial
from gridhpo.steering.optimisers._common import check_options
from gridhpo.steering.space import Numeric, Point, SearchSpace

log = logging.getLogger(__name__)

IN_NAME = "idds_input.json"  # iDDS's default input_json
OUT_NAME = "output.json"  # phpo's hpoRequestData output_json
DEFAULT_RETRIES = 3
DEFAULT_TIMEOUT = 600.0
OPTIONS = ("command", "image", "timeout", "points_per_call", "retries", "opt_space", "mount")
_TAIL_LINES = 20
_TAIL_CHARS = 2000


class _RunFailed(Exception):
    """One steering run that may succeed when run again (exit code, timeout, unreadable %OUT)."""

    def __init__(self, reason: str, tail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tail = tail


def one_line(text: str, limit: int = _TAIL_CHARS) -> str:
    """A stderr tail as one line (`` | `` between lines), its last ``limit`` characters."""
    joined = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return joined if len(joined) <= limit else "..." + joined[-limit:]


def substitute(command: str, values: Mapping[str, object]) -> str:
    """``%NAME`` replaced by its value, longest names first (as no name is a prefix of another
    today, the order only guards future ones)."""
    for key in sorted(values, key=len, reverse=True):
        command = command.replace(f"%{key}", str(values[key]))
    return command


class MountedDockerRuntime(DockerRuntime):
    """phpo's ``docker run -v $(pwd):DIR``: the folder is mounted at DIR (and is the working
    directory) inside the image; without DIR, at its own path as for an evaluation."""

    def __init__(self, mount: str | None) -> None:
        super().__init__()
        self.mount = mount

    def options(self, job: Job) -> dict[str, Any]:
        opts = super().options(job)
        if self.mount is not None:
            opts["volumes"] = {str(job.workdir): {"bind": self.mount, "mode": "rw"}}
            opts["working_dir"] = self.mount
        return opts


class ExternalSteering(Optimiser):
    name = "steering"
    algorithms = ("external",)
    # the same input gives the same points only if the user's steering is deterministic,
    # and points it proposed but that were never handed out are not recorded
    deterministic_restore = False
    external = True

    def __init__(self, space: SearchSpace, **kw: Any) -> None:
        super().__init__(space, **kw)
        self.check_space(space, self.algorithm, self.options)
        o = self.options
        self.command: str = o["command"]
        self.image: str | None = o.get("image")
        self.timeout = float(o.get("timeout", DEFAULT_TIMEOUT))
        self.points_per_call = int(o.get("points_per_call", max(1, self.parallel)))
        self.retries = int(o.get("retries", DEFAULT_RETRIES))
        self.opt_space: Any = o["opt_space"] if "opt_space" in o else space.to_dict()
        self.mount: str | None = o.get("mount")
        self._buffer: deque[Point] = deque()
        self._ended = False
        self._runtime: Runtime | None = None
        self._closed = threading.Event()
        self._running: Handle | None = None  # the steering run in progress, for close()
        self._running_lock = threading.Lock()

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        check_options(cls.name, options, OPTIONS)
        command = options.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ConfigError("optimiser.command: the steering backend needs the command that runs the steering "
                              "(with %IN, %OUT, %NUM_POINTS, %MAX_POINTS)")
        if "%OUT" not in command:
            raise ConfigError(f"optimiser.command: {command!r} has no %OUT: the steering could not say where "
                              "it writes its points")
        image = options.get("image")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            raise ConfigError(f"optimiser.image: {image!r} is not an image name")
        for key, low in (("points_per_call", 1), ("retries", 0)):
            v = options.get(key, low)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"optimiser.options.{key}: {v!r} is not an integer >= {low}")
        mount = options.get("mount")
        if mount is not None and (image is None or not isinstance(mount, str) or not mount.startswith("/")):
            raise ConfigError(f"optimiser.options.mount: {mount!r} must be an absolute path inside the image "
                              "(and optimiser.image given)")
        t = options.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ConfigError(f"optimiser.timeout: {t!r} is not a positive number of seconds")

    # ------------------------------------------------------------------ backend hooks

    def _ask(self, n: int) -> list[Point]:
        out: list[Point] = []
        while len(out) < n:
            if self._buffer:
                out.append(self._buffer.popleft())
                continue
            if self._ended:
                break
            self._call()
        return out

    def _tell(self, trial: Trial) -> None:
        pass  # the steering reads every result from %IN at its next run

    def _restore(self) -> None:
        self._buffer.clear()
        self._ended = False

    def close(self) -> None:
        """The task ended (finished, failed, cancelled) or the steering service is stopping: a
        steering run in progress is ended now, its whole process group (or its container) killed,
        never left running for up to ``timeout``. Called from the steering's thread (through its
        driver) while the run waits in the driver's worker thread; the steering is stateless, so
        killing it loses nothing a restart would not ask again."""
        self._closed.set()
        with self._running_lock:
            handle = self._running
        if handle is not None:
            handle.stop(grace=0.0)

    # ------------------------------------------------------------------ one steering run

    def _input(self) -> dict[str, Any]:
        points: list[list[Any]] = [[t.params, t.value if t.state == "done" else None]
                                   for t in sorted(self.trials.values(), key=lambda t: t.number)]
        points += [[p, None] for p in self._buffer]
        return {"points": points, "opt_space": self.opt_space}

    def _call(self) -> None:
        """Run the steering (again on failure) until it gives new points or ends the search."""
        generated = len(self.trials) + len(self._buffer)
        wanted = self.points_per_call
        if self.max_points is not None:
            wanted = min(wanted, self.max_points - generated)
        if wanted <= 0:
            self._ended = True
            return
        failures: list[_RunFailed] = []
        while len(failures) <= self.retries:
            if self._closed.is_set():  # the task ended: no run, no retry, no error
                self._ended = True
                return
            try:
                fresh = self._run_once(wanted)
            except _RunFailed as exc:
                if self._closed.is_set():
                    continue  # stopped by close(): not a failure of the steering
                failures.append(exc)
                log.warning("steering run %d of %d failed: %s", len(failures), self.retries + 1, exc.reason)
                continue
            if fresh is None:
                self._ended = True
                log.info("the steering ended the search (wrote [])")
            else:
                self._buffer.extend(fresh)
            return
        last = failures[-1]
        raise OptimiserError(f"the steering failed {len(failures)} times in a row (1 run + {self.retries} "
                             f"retries); last: {last.reason}; stderr tail: {one_line(last.tail) or '(empty)'}")

    def _run_once(self, wanted: int) -> list[Point] | None:
        """New valid points, or None when the steering wrote ``[]``."""
        workdir = Path(tempfile.mkdtemp(prefix="gridhpo-steering-"))
        try:
            (workdir / IN_NAME).write_text(json.dumps(self._input()), encoding="utf-8")
            # without a budget (a bare optimiser) the most it may have is what this call asks for
            most = self.max_points if self.max_points is not None else len(self.trials) + len(self._buffer) + wanted
            command = substitute(self.command, {"IN": IN_NAME, "OUT": OUT_NAME, "NUM_POINTS": wanted,
                                                "MAX_POINTS": most, "SEED": self.seed})
            job = Job(workdir=workdir, command=command, image=self.image,
                      name=f"gridhpo-steering-{uuid.uuid4().hex[:12]}")
            code, tail = self._run(job)
            if code != 0:
                raise _RunFailed(f"exited with code {code}", tail)
            try:
                raw = json.loads((workdir / OUT_NAME).read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise _RunFailed(f"wrote no %OUT ({OUT_NAME})", tail) from None
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise _RunFailed(f"%OUT ({OUT_NAME}) is not valid JSON: {exc}", tail) from None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if raw == []:
            return None
        fresh = self._validate(raw)
        if not fresh:
            raise _RunFailed(f"proposed only points already asked ({len(raw)})", tail)
        return fresh

    def _run(self, job: Job) -> tuple[int, str]:
        try:
            handle: Handle = self._get_runtime().start(job)
        except GridHPOError as exc:  # daemon unreachable, image missing: iDDS retries a failed run too
            raise _RunFailed(f"could not start: {exc}", "") from None
        with self._running_lock:
            self._running = handle
        try:
            if self._closed.is_set():  # closed while it started: close() did not see it
                handle.stop(grace=0.0)
            deadline = time.monotonic() + self.timeout
            code = handle.poll()
            while code is None and time.monotonic() < deadline and not self._closed.wait(0.05):
                code = handle.poll()
            if self._closed.is_set():
                raise _RunFailed("stopped: the task ended", "")
            if code is None:
                handle.stop(grace=5.0)
                raise _RunFailed(f"timed out after {self.timeout:g}s (optimiser.timeout)",
                                 handle.output_tail(_TAIL_LINES))
            return code, handle.output_tail(_TAIL_LINES)
        finally:
            with self._running_lock:
                self._running = None
            handle.cleanup()

    def _get_runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = runtimes.get("process")() if self.image is None else MountedDockerRuntime(self.mount)
        return self._runtime

    def _validate(self, raw: object) -> list[Point]:
        """The new points of a steering's output; a malformed one fails the task."""
        if not isinstance(raw, list):
            raise OptimiserError(f"the steering's {OUT_NAME} is not a JSON list of points but "
                                 f"{type(raw).__name__}: {json.dumps(raw)[:200]}")
        seen = self.seen_keys() | {self.space.key(p) for p in self._buffer}
        fresh: list[Point] = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise OptimiserError(f"the steering's point {i} is not a JSON object: {json.dumps(item)[:200]}")
            point = self._coerce(item)
            try:
                self.space.validate_point(point)
            except ConfigError as exc:
                raise OptimiserError(f"the steering proposed a point outside the search space: {exc} "
                                     f"(point {i}: {json.dumps(item)[:200]})") from None
            key = self.space.key(point)
            if key in seen:
                log.warning("the steering proposed point %s again: dropped", json.dumps(item)[:200])
                continue
            seen.add(key)
            fresh.append(point)
        if self.max_points is not None:
            fresh = fresh[:max(0, self.max_points - len(self.trials) - len(self._buffer))]
        return fresh

    def _coerce(self, item: Mapping[str, Any]) -> Point:
        """``3.0`` for an int parameter is ``3``: JSON writers (numpy through json) often give
        integral floats; any other value is left for the space to judge."""
        point: Point = dict(item)
        for name, value in item.items():
            p = self.space.by_name.get(name)
            if isinstance(p, Numeric) and p.is_int and isinstance(value, float) and value.is_integer():
                point[name] = int(value)
        return point
