"""The container runtime through the Docker API: Docker Engine, or Podman's compatible socket.

The daemon is found as the ``docker`` command finds it (``DOCKER_HOST``, e.g.
``unix:///run/podman/podman.sock``). Each attempt runs ``evaluation.image`` with the work
directory bind-mounted at the same path and used as the working directory, so the paths in
gridhpo.json and ``GRIDHPO_WORKDIR`` hold inside the container too. Only ``job.env`` enters
the container: the pilot's own environment (and its secrets) never does.

``evaluation.command`` runs with the image's ``/bin/sh -c``, as the process runtime runs it
with the host's shell (``$VAR``, ``&&`` and builtins mean the same in both). Without a command
the image runs as built (its ENTRYPOINT/CMD): an image that only reads input.json and writes
output.json needs nothing of gridhpo, and an image without a shell gives its command that way.

Site settings, from the environment: ``GRIDHPO_DOCKER_PULL`` (``missing``, the default, pulls an
image the daemon does not have; ``never`` fails at once), ``GRIDHPO_DOCKER_NETWORK`` (a network
mode; the daemon's default otherwise), ``GRIDHPO_DOCKER_USER`` (``uid:gid`` to run as; by
default the pilot's own when it is not root, so it can delete what the evaluation wrote).

Every container carries the labels ``gridhpo.pilot`` and ``gridhpo.runtime``; ``close()`` removes
all containers of this runtime instance, so none outlives its pilot.
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from gridhpo.errors import EvaluationError
from gridhpo.evaluation.environment import is_secret
from gridhpo.evaluation.runtimes._base import Handle, Job, Runtime, task_dirs
from gridhpo.protocol.evaluation import MAX_MEMORY_CHARS, memory_bytes

log = logging.getLogger(__name__)

LABEL_PILOT = "gridhpo.pilot"
LABEL_RUNTIME = "gridhpo.runtime"
LABEL_JOB = "gridhpo.job"
_NAME_OK = re.compile(r"[^a-zA-Z0-9_.-]")


def _import_docker() -> Any:
    try:
        import docker
    except ImportError as exc:  # the pilot package installs it with the [containers] extra
        raise EvaluationError("the docker runtime needs the docker package: pip install 'gridhpo[containers]'") \
            from exc
    return docker


def memory_limit(text: str) -> int:
    """``evaluation.resources.memory`` in bytes, or EvaluationError."""
    size = memory_bytes(text)
    if size is None:
        raise EvaluationError(f"evaluation.resources.memory {text[:MAX_MEMORY_CHARS]!r} is not a size such as "
                              "512m or 2g")
    return size


def command_options(command: str | None) -> dict[str, Any]:
    """How ``evaluation.command`` becomes the container's command (empty: the image's own)."""
    if not command or not command.strip():
        return {}
    return {"entrypoint": ["/bin/sh", "-c"], "command": [command]}


def container_options(job: Job, labels: dict[str, str]) -> dict[str, Any]:
    """The ``containers.create`` arguments for one attempt (pure, so the mapping is testable)."""
    docker = _import_docker()
    workdir = str(job.workdir)
    env = {k: v for k, v in job.env.items() if not is_secret(k, v)}  # the rule of every runtime
    opts: dict[str, Any] = {
        "image": job.image,
        "name": _NAME_OK.sub("-", job.name)[:200],
        "working_dir": workdir,
        "volumes": {workdir: {"bind": workdir, "mode": "rw"}, **{d: {"bind": d, "mode": "ro"} for d in task_dirs(job)}},
        "environment": env,
        "labels": {**labels, LABEL_JOB: job.name, LABEL_PILOT: job.env.get("GRIDHPO_PILOT_ID", "")},
        "detach": True,
        "stdin_open": False,
        "tty": False,
    }
    opts.update(command_options(job.command))
    res = job.resources
    if res.get("cpus"):
        opts["nano_cpus"] = int(float(res["cpus"]) * 1e9)
    if res.get("memory"):
        opts["mem_limit"] = memory_limit(str(res["memory"]))
    gpus = int(res.get("gpus") or 0)
    if gpus > 0:
        opts["device_requests"] = [docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])]
    user = os.environ.get("GRIDHPO_DOCKER_USER")
    if user is None and os.getuid() != 0:
        user = f"{os.getuid()}:{os.getgid()}"
    if user:
        opts["user"] = user
    network = os.environ.get("GRIDHPO_DOCKER_NETWORK")
    if network:
        opts["network_mode"] = network
    return opts


class DockerHandle(Handle):
    """One container. ``poll`` asks the daemon at most every ``poll_interval`` seconds."""

    poll_interval = 0.2
    # the daemon may be restarting: give it this long before the point counts as failed
    unreachable_patience = 60.0

    def __init__(self, runtime: DockerRuntime, container: Any, workdir: Path) -> None:
        self.runtime = runtime
        self.container = container
        self.workdir = workdir
        self.code: int | None = None
        self._checked = 0.0
        self._unreachable_since: float | None = None
        self._removed = False
        self._logs_saved = False
        self._lock = threading.Lock()

    def _inspect_code(self) -> int | None:
        docker = _import_docker()
        try:
            state = self.container.client.api.inspect_container(self.container.id)["State"]
        except docker.errors.NotFound:
            log.error("container %s vanished while running", self.container.name)
            return 255
        except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc:
            now = time.monotonic()
            self._unreachable_since = self._unreachable_since or now
            if now - self._unreachable_since > self.unreachable_patience:
                raise EvaluationError(f"container daemon unreachable for {self.unreachable_patience:.0f}s "
                                      f"while running {self.container.name}: {exc}") from exc
            log.warning("cannot inspect container %s: %s", self.container.name, exc)
            return None
        self._unreachable_since = None
        if state.get("Running") or state.get("Status") in ("created", "configured", "initialized"):
            return None
        return int(state.get("ExitCode", 255))

    def poll(self) -> int | None:
        if self.code is not None:
            return self.code
        now = time.monotonic()
        if now - self._checked < self.poll_interval:
            return None
        self._checked = now
        self.code = self._inspect_code()
        return self.code

    def stop(self, grace: float) -> int:
        docker = _import_docker()
        if self.code is not None:
            return self.code
        try:
            # the daemon sends the image's stop signal (SIGTERM), waits, then SIGKILL
            self.container.stop(timeout=max(0, math.ceil(grace)))
        except docker.errors.NotFound:
            return self.code if self.code is not None else 255
        except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc:
            log.warning("stopping container %s failed (%s): killing it", self.container.name, exc)
            try:
                self.container.kill()
            except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc2:
                raise EvaluationError(f"cannot stop container {self.container.name}: {exc2}") from exc2
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self._checked = 0.0
            code = self.poll()
            if code is not None:
                return code
            time.sleep(0.05)
        raise EvaluationError(f"container {self.container.name} still running after stop and kill")

    def _logs(self, stdout: bool, stderr: bool, tail: int | str = "all") -> str:
        docker = _import_docker()
        try:
            raw = self.container.logs(stdout=stdout, stderr=stderr, tail=tail)
        except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc:
            log.warning("cannot read the logs of container %s: %s", self.container.name, exc)
            return ""
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)

    def output_tail(self, lines: int = 20) -> str:
        if self._logs_saved:
            from gridhpo.evaluation.runtimes.process import tail
            return tail(self.workdir / "stderr.log", lines) or tail(self.workdir / "stdout.log", lines)
        return self._logs(False, True, lines) or self._logs(True, False, lines)

    def save_logs(self) -> None:
        """Keep the container's output in the work dir (as the process runtime does) before removal."""
        if self._logs_saved or self._removed:
            return
        for name, out, err in (("stdout.log", True, False), ("stderr.log", False, True)):
            try:
                (self.workdir / name).write_text(self._logs(out, err))
            except OSError as exc:
                log.warning("cannot save %s of %s: %s", name, self.container.name, exc)
        self._logs_saved = True

    def cleanup(self) -> None:
        docker = _import_docker()
        with self._lock:
            if self._removed:
                return
            if self.poll() is None:
                self.stop(0)
            if self.workdir.exists():
                self.save_logs()
            try:
                self.container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc:
                raise EvaluationError(f"cannot remove container {self.container.name}: {exc}") from exc
            self._removed = True
        self.runtime.forget(self)


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url
        self.instance = f"rt-{uuid.uuid4().hex[:12]}"
        self._client: Any = None
        self._live: dict[str, DockerHandle] = {}
        self._checked_images: set[str] = set()

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_RUNTIME: self.instance}

    def where(self) -> str:
        return self.base_url or os.environ.get("DOCKER_HOST") or "the default Docker socket"

    def client(self) -> Any:
        if self._client is None:
            docker = _import_docker()
            try:
                client = docker.DockerClient(base_url=self.base_url) if self.base_url else docker.from_env()
                client.ping()
            except (docker.errors.DockerException, OSError) as exc:
                raise EvaluationError(
                    f"container daemon unreachable at {self.where()}: {exc} "
                    "(start Docker, or podman system service, and set DOCKER_HOST)") from exc
            self._client = client
        return self._client

    def check(self, job: Job) -> None:
        if not job.image:
            raise EvaluationError("the docker runtime needs evaluation.image")
        if job.image in self._checked_images:
            return
        docker = _import_docker()
        client = self.client()
        try:
            client.images.get(job.image)
        except docker.errors.ImageNotFound as exc:
            if os.environ.get("GRIDHPO_DOCKER_PULL", "missing") == "never":
                raise EvaluationError(f"image {job.image!r} not found at {self.where()} "
                                      "(GRIDHPO_DOCKER_PULL=never: build or load it on this site)") from exc
            log.info("pulling image %s", job.image)
            try:
                client.images.pull(job.image)
            except (docker.errors.APIError, docker.errors.DockerException) as pull_exc:
                raise EvaluationError(f"image {job.image!r} not found at {self.where()} and cannot be pulled: "
                                      f"{_short(pull_exc)}") from pull_exc
        except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc:
            raise EvaluationError(f"cannot look up image {job.image!r} at {self.where()}: {_short(exc)}") from exc
        self._checked_images.add(job.image)

    def options(self, job: Job) -> dict[str, Any]:
        """The ``containers.create`` arguments; a subclass may mount the work directory elsewhere."""
        return container_options(job, self.labels)

    def start(self, job: Job) -> Handle:
        self.check(job)
        docker = _import_docker()
        client = self.client()
        opts = self.options(job)
        try:
            try:
                container = client.containers.create(**opts)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                # a leftover of an earlier run with the same attempt name: it is not running anything of ours
                log.warning("removing leftover container %s", opts["name"])
                client.containers.get(opts["name"]).remove(force=True)
                container = client.containers.create(**opts)
            handle = DockerHandle(self, container, job.workdir)
            self._live[container.id] = handle
            container.start()
        except docker.errors.ImageNotFound as exc:
            raise EvaluationError(f"image {job.image!r} not found at {self.where()}") from exc
        except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc:
            raise EvaluationError(f"cannot start image {job.image!r} at {self.where()}: {_short(exc)}") from exc
        log.debug("started container %s (%s)", container.name, container.id[:12])
        return handle

    def forget(self, handle: DockerHandle) -> None:
        self._live.pop(handle.container.id, None)

    def containers(self) -> list[Any]:
        """Every container this runtime instance started that still exists."""
        return list(self.client().containers.list(all=True, filters={"label": f"{LABEL_RUNTIME}={self.instance}"}))

    def close(self) -> None:
        if self._client is None:
            return
        docker = _import_docker()
        errors: list[str] = []
        for handle in list(self._live.values()):
            try:
                handle.cleanup()
            except EvaluationError as exc:
                errors.append(str(exc))
        # also what a lost handle left behind (a start interrupted half-way)
        try:
            for container in self.containers():
                log.warning("removing container %s left by this pilot", container.name)
                container.remove(force=True)
        except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc:
            errors.append(f"listing/removing containers at {self.where()}: {_short(exc)}")
        self._live.clear()
        try:
            self._client.close()
        finally:
            self._client = None
        if errors:
            raise EvaluationError("containers may outlive this pilot: " + "; ".join(errors))


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
