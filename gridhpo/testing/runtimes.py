"""The Runtime contract (gridhpo.evaluation.runtimes.Runtime) as pytest suites.

``RuntimeContract`` holds for every runtime, the in-process one included: a job that succeeds
leaves its output.json in the work directory, one that fails exits non-zero with its error in
the output tail. ``CommandRuntimeContract`` adds what a runtime running a shell command owes:
the work directory, the environment without secrets, SIGTERM then the kill after a grace period.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pytest

from gridhpo.evaluation.runtimes import Job, Runtime
from gridhpo.evaluation.runtimes.process import wait

Outcome = Literal["succeed", "fail"]
LOSS = 1.5  # what a succeeding job writes to output.json
ERROR = "boom"  # what a failing job writes to stderr


@dataclass(frozen=True)
class RuntimeCase:
    """A runtime and how to make, in a work directory, a job with the outcome asked for: one
    that succeeds writes ``{"status": 0, "loss": 1.5}`` to output.json; one that fails writes
    ``boom`` to stderr (or raises it) and exits non-zero."""

    runtime: Runtime
    job: Callable[[Path, Outcome], Job]


def command_job(image: str | None = None) -> Callable[[Path, Outcome], Job]:
    """``RuntimeCase.job`` for a runtime that runs a shell command (in ``image`` if given)."""
    commands = {"succeed": f"echo '{{\"status\": 0, \"loss\": {LOSS}}}' > output.json",
                "fail": f"echo {ERROR} >&2; exit 3"}

    def make(workdir: Path, outcome: Outcome) -> Job:
        return Job(workdir=workdir, command=commands[outcome], image=image, name=f"contract-{workdir.parent.name}")
    return make


def returns_x(*, x: float) -> float:
    """The objective of the in-process case: the point's ``x``."""
    return x


def raises(*, x: float) -> float:
    raise RuntimeError(ERROR)


def python_job(workdir: Path, outcome: Outcome) -> Job:
    """``RuntimeCase.job`` for the in-process runtime (``evaluation.python``)."""
    ref = f"{__name__}:{'returns_x' if outcome == 'succeed' else 'raises'}"
    return Job(workdir=workdir, command=None, python=ref, params={"x": LOSS})


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


class RuntimeContract:
    """Subclass under a Test name with a ``runtime_case`` fixture (the runtime is closed by it)."""

    @pytest.fixture
    def workdir(self, tmp_path: Path) -> Path:
        work = tmp_path / "work"
        work.mkdir()
        (work / "input.json").write_text(json.dumps({"x": LOSS}))
        return work

    def test_a_job_that_succeeds_leaves_its_output(self, runtime_case: RuntimeCase, workdir: Path) -> None:
        job = runtime_case.job(workdir, "succeed")
        runtime_case.runtime.check(job)
        handle = runtime_case.runtime.start(job)
        assert wait(handle, 60) == 0
        assert json.loads((workdir / "output.json").read_text()) == {"status": 0, "loss": LOSS}
        # only an in-process evaluation hands its output over in memory as well
        assert handle.output() == ({"status": 0, "loss": LOSS} if runtime_case.runtime.in_process else None)
        assert handle.stop(grace=1) == 0  # stopping an evaluation that ended changes nothing
        handle.cleanup()

    def test_a_job_that_fails_says_why(self, runtime_case: RuntimeCase, workdir: Path) -> None:
        handle = runtime_case.runtime.start(runtime_case.job(workdir, "fail"))
        code = wait(handle, 60)
        assert code not in (None, 0)
        assert ERROR in handle.output_tail(20)
        assert handle.poll() == code
        handle.cleanup()
        handle.cleanup()  # idempotent
        assert ERROR in handle.output_tail(20)  # still there after cleanup


    def test_an_in_process_runtime_gives_its_output_in_memory(self, runtime_case: RuntimeCase,
                                                              tmp_path: Path) -> None:
        """The pilot's path for cheap objectives: no work directory, the output from the handle,
        a bare number named by the task's metric."""
        if not runtime_case.runtime.in_process:
            pytest.skip(f"{type(runtime_case.runtime).__name__} runs evaluations out of process")
        nowhere = tmp_path / "never-made"
        ok = runtime_case.runtime.start(replace(runtime_case.job(nowhere, "succeed"), in_memory=True, metric="acc"))
        assert ok.poll() == 0 and ok.output() == {"status": 0, "acc": LOSS}
        failed = runtime_case.runtime.start(replace(runtime_case.job(nowhere, "fail"), in_memory=True))
        assert failed.poll() not in (None, 0) and failed.output() is None
        assert ERROR in failed.output_tail(20)
        assert not nowhere.exists()


class CommandRuntimeContract:
    """Subclass under a Test name with a ``command_runtime`` fixture: (runtime, image or None)."""

    @staticmethod
    def job(tmp_path: Path, image: str | None, command: str, **env: str) -> Job:
        workdir = tmp_path / "work"
        workdir.mkdir(exist_ok=True)
        (workdir / "input.json").write_text('{"x": 1.5}')
        return Job(workdir=workdir, command=command, image=image,
                   env={"GRIDHPO_WORKDIR": str(workdir), "GRIDHPO_POINT": "7", **env},
                   name=f"contract-{tmp_path.name}")

    @pytest.mark.parametrize("command, code", [("true", 0), ("exit 3", 3), ("cat missing.txt", 1)])
    def test_exit_code_is_reported(self, command_runtime: tuple[Runtime, str | None], tmp_path: Path,
                                   command: str, code: int) -> None:
        runtime, image = command_runtime
        handle = runtime.start(self.job(tmp_path, image, command))
        assert wait(handle, 60) == code
        handle.cleanup()
        handle.cleanup()  # idempotent

    def test_runs_in_the_workdir_and_reads_input(self, command_runtime: tuple[Runtime, str | None],
                                                 tmp_path: Path) -> None:
        runtime, image = command_runtime
        j = self.job(tmp_path, image, 'pwd > where.txt; cat input.json > seen.json; echo "$GRIDHPO_WORKDIR" > wd.txt')
        assert wait(runtime.start(j), 60) == 0
        assert (j.workdir / "where.txt").read_text().strip() == str(j.workdir)
        assert (j.workdir / "wd.txt").read_text().strip() == str(j.workdir)
        assert (j.workdir / "seen.json").read_text() == '{"x": 1.5}'

    def test_environment_has_job_variables_and_no_secrets(self, command_runtime: tuple[Runtime, str | None],
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        runtime, image = command_runtime
        monkeypatch.setenv("GRIDHPO_DB", "postgresql://user:hunter2@db/gridhpo")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2-aws")
        j = self.job(tmp_path, image, "env > env.txt", TASK_OPTION="fast")
        assert wait(runtime.start(j), 60) == 0
        env = (j.workdir / "env.txt").read_text()
        assert "GRIDHPO_POINT=7" in env and "TASK_OPTION=fast" in env
        assert "hunter2" not in env

    def test_stop_sends_sigterm_first(self, command_runtime: tuple[Runtime, str | None], tmp_path: Path) -> None:
        runtime, image = command_runtime
        j = self.job(tmp_path, image, "trap 'echo saved > term.txt; exit 0' TERM; echo up > ready.txt; "
                                      "while true; do sleep 0.1; done")
        handle = runtime.start(j)
        wait_for(j.workdir / "ready.txt")
        assert handle.poll() is None
        t0 = time.monotonic()
        code = handle.stop(grace=20)
        assert time.monotonic() - t0 < 15, "the evaluation exited on SIGTERM: no need to wait the grace period"
        assert (j.workdir / "term.txt").read_text().strip() == "saved"
        assert code == 0
        assert handle.poll() == 0

    def test_stop_waits_for_a_child_of_the_shell_that_saves_on_sigterm(
            self, command_runtime: tuple[Runtime, str | None], tmp_path: Path) -> None:
        """``python train.py`` run by ``sh -c`` (no exec): the shell dies at once on SIGTERM while
        its child is still saving; stop must wait for the child, within the grace period."""
        runtime, image = command_runtime
        if image is not None:
            pytest.skip("in a container only PID 1 gets SIGTERM (Docker API semantics): images use `exec` or an "
                        "init that forwards signals, see docs/containers.md")
        j = self.job(tmp_path, image, "sh -c \"trap 'sleep 1; echo saved > term.txt; exit 0' TERM; "
                                      "echo up > ready.txt; while true; do sleep 0.1; done\"; echo after")
        handle = runtime.start(j)
        wait_for(j.workdir / "ready.txt")
        handle.stop(grace=20)
        assert (j.workdir / "term.txt").read_text().strip() == "saved"

    def test_stop_kills_after_grace(self, command_runtime: tuple[Runtime, str | None], tmp_path: Path) -> None:
        runtime, image = command_runtime
        j = self.job(tmp_path, image, "trap '' TERM; echo up > ready.txt; while true; do sleep 0.1; done")
        handle = runtime.start(j)
        wait_for(j.workdir / "ready.txt")
        t0 = time.monotonic()
        code = handle.stop(grace=1)
        assert time.monotonic() - t0 >= 0.9
        assert code != 0
        assert handle.poll() is not None

    def test_output_tail_keeps_last_lines(self, command_runtime: tuple[Runtime, str | None], tmp_path: Path) -> None:
        runtime, image = command_runtime
        j = self.job(tmp_path, image,
                     "echo to-stdout; i=0; while [ $i -lt 50 ]; do i=$((i+1)); echo line$i >&2; done; exit 1")
        handle = runtime.start(j)
        assert wait(handle, 60) == 1
        tail = handle.output_tail(5).split()
        assert tail == [f"line{i}" for i in range(46, 51)]
        handle.cleanup()
        assert handle.output_tail(2).split() == ["line49", "line50"]  # still there after cleanup
