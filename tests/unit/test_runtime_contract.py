"""The Runtime contract (evaluation/runtimes/_base.py), for every runtime that runs a command:
the plain process, the Docker API runtime on a real Podman socket, Apptainer where installed."""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridhpo.evaluation.runtimes import Job, Runtime
from gridhpo.evaluation.runtimes.apptainer import ApptainerRuntime
from gridhpo.evaluation.runtimes.docker import DockerRuntime
from gridhpo.evaluation.runtimes.process import ProcessRuntime, wait
from tests.podman import BUSYBOX_IMAGE, Podman, busybox_context
from tests.podman import podman as podman  # session fixture

# the container runtimes need Podman or Apptainer: integration tests
RUNTIMES = ["process", *(pytest.param(n, marks=pytest.mark.integration) for n in ("docker", "apptainer"))]


@pytest.fixture(params=RUNTIMES)
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Runtime, str | None]]:
    """(runtime, image) for one runtime; the runtime is closed afterwards."""
    name = request.param
    runtime: Runtime
    image: str | None = None
    if name == "process":
        runtime = ProcessRuntime()
    elif name == "docker":
        pm: Podman = request.getfixturevalue("podman")
        runtime, image = DockerRuntime(base_url=pm.url), BUSYBOX_IMAGE
    else:
        binary = shutil.which("apptainer") or shutil.which("singularity")
        if binary is None:
            pytest.skip("apptainer/singularity not installed (not packaged in Debian)")
        sandbox = busybox_context(tmp_path / "sandbox") / "rootfs"  # a sandbox directory is an image
        runtime, image = ApptainerRuntime(), str(sandbox)
    try:
        yield runtime, image
    finally:
        runtime.close()


def job(tmp_path: Path, image: str | None, command: str, **env: str) -> Job:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    (workdir / "input.json").write_text('{"x": 1.5}')
    return Job(workdir=workdir, command=command, image=image,
               env={"GRIDHPO_WORKDIR": str(workdir), "GRIDHPO_POINT": "7", **env}, name=f"contract-{tmp_path.name}")


def until(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("command, code", [("true", 0), ("exit 3", 3), ("cat missing.txt", 1)])
def test_exit_code_is_reported(make: tuple[Runtime, str | None], tmp_path: Path, command: str, code: int) -> None:
    runtime, image = make
    handle = runtime.start(job(tmp_path, image, command))
    assert wait(handle, 60) == code
    handle.cleanup()
    handle.cleanup()  # idempotent


def test_runs_in_the_workdir_and_reads_input(make: tuple[Runtime, str | None], tmp_path: Path) -> None:
    runtime, image = make
    j = job(tmp_path, image, 'pwd > where.txt; cat input.json > seen.json; echo "$GRIDHPO_WORKDIR" > wd.txt')
    assert wait(runtime.start(j), 60) == 0
    assert (j.workdir / "where.txt").read_text().strip() == str(j.workdir)
    assert (j.workdir / "wd.txt").read_text().strip() == str(j.workdir)
    assert (j.workdir / "seen.json").read_text() == '{"x": 1.5}'


def test_environment_has_job_variables_and_no_secrets(make: tuple[Runtime, str | None], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, image = make
    monkeypatch.setenv("GRIDHPO_DB", "postgresql://user:hunter2@db/gridhpo")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2-aws")
    j = job(tmp_path, image, "env > env.txt", TASK_OPTION="fast")
    assert wait(runtime.start(j), 60) == 0
    env = (j.workdir / "env.txt").read_text()
    assert "GRIDHPO_POINT=7" in env and "TASK_OPTION=fast" in env
    assert "hunter2" not in env


def test_stop_sends_sigterm_first(make: tuple[Runtime, str | None], tmp_path: Path) -> None:
    runtime, image = make
    j = job(tmp_path, image, "trap 'echo saved > term.txt; exit 0' TERM; echo up > ready.txt; "
                             "while true; do sleep 0.1; done")
    handle = runtime.start(j)
    until(j.workdir / "ready.txt")
    assert handle.poll() is None
    t0 = time.monotonic()
    code = handle.stop(grace=20)
    assert time.monotonic() - t0 < 15, "the evaluation exited on SIGTERM: no need to wait the grace period"
    assert (j.workdir / "term.txt").read_text().strip() == "saved"
    assert code == 0
    assert handle.poll() == 0


def test_stop_waits_for_a_child_of_the_shell_that_saves_on_sigterm(make: tuple[Runtime, str | None],
                                                                  tmp_path: Path) -> None:
    """``python train.py`` run by ``sh -c`` (no exec): the shell dies at once on SIGTERM while
    its child is still saving; stop must wait for the child, within the grace period."""
    runtime, image = make
    if image is not None:
        pytest.skip("in a container only PID 1 gets SIGTERM (Docker API semantics): images use `exec` or an "
                    "init that forwards signals, see docs/containers.md")
    j = job(tmp_path, image, "sh -c \"trap 'sleep 1; echo saved > term.txt; exit 0' TERM; echo up > ready.txt; "
                             "while true; do sleep 0.1; done\"; echo after")
    handle = runtime.start(j)
    until(j.workdir / "ready.txt")
    handle.stop(grace=20)
    assert (j.workdir / "term.txt").read_text().strip() == "saved"


def test_stop_kills_after_grace(make: tuple[Runtime, str | None], tmp_path: Path) -> None:
    runtime, image = make
    j = job(tmp_path, image, "trap '' TERM; echo up > ready.txt; while true; do sleep 0.1; done")
    handle = runtime.start(j)
    until(j.workdir / "ready.txt")
    t0 = time.monotonic()
    code = handle.stop(grace=1)
    assert time.monotonic() - t0 >= 0.9
    assert code != 0
    assert handle.poll() is not None


def test_output_tail_keeps_last_lines(make: tuple[Runtime, str | None], tmp_path: Path) -> None:
    runtime, image = make
    j = job(tmp_path, image, "echo to-stdout; i=0; while [ $i -lt 50 ]; do i=$((i+1)); echo line$i >&2; done; exit 1")
    handle = runtime.start(j)
    assert wait(handle, 60) == 1
    tail = handle.output_tail(5).split()
    assert tail == [f"line{i}" for i in range(46, 51)]
    handle.cleanup()
    assert handle.output_tail(2).split() == ["line49", "line50"]  # still there after cleanup

