"""The Runtime contract (gridhpo.testing.runtimes) over every runtime: the plain process and the
in-process call, the Docker API runtime on a real Podman socket, Apptainer where installed."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridhpo.evaluation import runtimes
from gridhpo.evaluation.runtimes import Runtime
from gridhpo.evaluation.runtimes.apptainer import ApptainerRuntime
from gridhpo.evaluation.runtimes.docker import DockerRuntime
from gridhpo.evaluation.runtimes.inprocess import InProcessRuntime
from gridhpo.evaluation.runtimes.process import ProcessRuntime
from gridhpo.testing.runtimes import CommandRuntimeContract, RuntimeCase, RuntimeContract, command_job, python_job
from tests.podman import BUSYBOX_IMAGE, Podman, busybox_context
from tests.podman import podman as podman  # session fixture

# every registered runtime; the container runtimes need Podman or Apptainer: integration tests
ALL = [n if n in ("process", "python") else pytest.param(n, marks=pytest.mark.integration)
       for n in sorted(runtimes.REGISTRY)]
COMMANDS = [n for n in ALL if n != "python"]  # all but the in-process one run a command


def command_runtime_named(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Runtime, str | None]:
    """(runtime, image) for one runtime that runs commands."""
    if name == "process":
        return ProcessRuntime(), None
    if name == "docker":
        pm: Podman = request.getfixturevalue("podman")
        return DockerRuntime(base_url=pm.url), BUSYBOX_IMAGE
    assert name == "apptainer", f"no fixture for the runtime {name!r} yet: add one here"
    binary = shutil.which("apptainer") or shutil.which("singularity")
    if binary is None:
        pytest.skip("apptainer/singularity not installed (not packaged in Debian)")
    sandbox = busybox_context(tmp_path / "sandbox") / "rootfs"  # a sandbox directory is an image
    return ApptainerRuntime(), str(sandbox)


class TestCommandRuntimes(CommandRuntimeContract):
    @pytest.fixture(params=COMMANDS)
    def command_runtime(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Runtime, str | None]]:
        runtime, image = command_runtime_named(request.param, request, tmp_path)
        try:
            yield runtime, image
        finally:
            runtime.close()


class TestRuntimes(RuntimeContract):
    @pytest.fixture(params=ALL)
    def runtime_case(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeCase]:
        if request.param == "python":
            case = RuntimeCase(InProcessRuntime(), python_job)
        else:
            runtime, image = command_runtime_named(request.param, request, tmp_path)
            case = RuntimeCase(runtime, command_job(image))
        try:
            yield case
        finally:
            case.runtime.close()
