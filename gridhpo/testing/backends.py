"""The pilot batch backend contract (gridhpo.evaluation.backends.PilotBackend) as a pytest suite.

The fixture gives a backend that can submit here (for Slurm: a cluster, or the fake ``sbatch``
and ``squeue`` of gridhpo's own tests); jobs are short shell scripts, and one runs Python to
check that a pilot in the job learns its end from the batch system.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

from gridhpo.evaluation import environment, submit
from gridhpo.evaluation.backends import PilotBackend, Submission

WALLTIME = 300.0
SECRET_BROKER = "amqp://user:hunter2@mq//"
SECRET_TOKEN = "tok-hunter3"
WALLTIME_PROBE = "from gridhpo.evaluation.batch import remaining_walltime as r; print('left', r())"


def job_script(backend: PilotBackend, folder: Path, body: str) -> tuple[Path, Path]:
    """(script, log) of a job running ``body`` under ``backend``'s header."""
    folder.mkdir(parents=True, exist_ok=True)
    script, log = folder / "job.sh", folder / "job.log"
    script.write_text("\n".join(["#!/bin/bash", *backend.header(7, WALLTIME, log), body]) + "\n")
    script.chmod(0o700)
    return script, log


def launched(backend: PilotBackend, script: Path, log: Path) -> Submission:
    job = backend.launch(script, log, environment.scrubbed(os.environ), [])
    assert job.strip() and "\n" not in job, f"the job id {job!r} is not one word"
    return Submission(backend.name, job, 7, "contract", str(script), str(log), WALLTIME, time.time())


def until_ended(backend: PilotBackend, sub: Submission, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while sub.job_id in backend.states([sub]):
        assert time.monotonic() < deadline, f"job {sub.job_id} never ended"
        time.sleep(0.2)


def until_written(log: Path, text: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text()):
        assert time.monotonic() < deadline, f"{log.name} never said {text!r}"
        time.sleep(0.2)
    return log.read_text()


class BackendContract:
    """Subclass under a Test name with a ``pilot_backend`` fixture (GRIDHPO_HOME set apart)."""

    def test_the_script_runs_a_pilot_with_its_secrets_in_an_env_file_only(self, pilot_backend: PilotBackend,
                                                                           tmp_path: Path) -> None:
        script, log = tmp_path / "p.sh", tmp_path / "p.log"
        submit.write_script(pilot_backend, 7, "cern", WALLTIME, script, log, broker=SECRET_BROKER,
                            token=SECRET_TOKEN)
        text = script.read_text()
        assert text.startswith("#!/bin/bash\n") and script.stat().st_mode & 0o100
        assert "hunter" not in text, "a secret in the job script"
        exec_line = text.splitlines()[-1].split()
        assert exec_line[0] == "exec" and "pilot" in exec_line and "--pilot-id" in exec_line
        assert f"--env-file {tmp_path / 'p.env'}" in text and "--walltime" not in exec_line
        env = (tmp_path / "p.env").read_text()
        assert f"GRIDHPO_BROKER={SECRET_BROKER}\n" in env and f"GRIDHPO_TOKEN={SECRET_TOKEN}\n" in env
        assert (tmp_path / "p.env").stat().st_mode & 0o077 == 0

    def test_a_job_runs_writes_its_log_and_is_known_until_it_ends(self, pilot_backend: PilotBackend,
                                                                  tmp_path: Path) -> None:
        script, log = job_script(pilot_backend, tmp_path / "job", f"echo started; until [ -e {tmp_path}/go ]; "
                                                                  "do sleep 0.1; done; echo done")
        sub = launched(pilot_backend, script, log)
        until_written(log, "started")
        state = pilot_backend.states([sub])[sub.job_id]
        assert state.state != "ended" and (state.left is None or 0 < state.left <= WALLTIME)
        (tmp_path / "go").touch()
        until_ended(pilot_backend, sub)
        assert "done" in until_written(log, "done")

    def test_a_pilot_in_the_job_learns_its_end_from_the_batch_system(self, pilot_backend: PilotBackend,
                                                                     tmp_path: Path) -> None:
        script, log = job_script(pilot_backend, tmp_path / "job",
                                 f"{shlex.quote(sys.executable)} -c {shlex.quote(WALLTIME_PROBE)}")
        sub = launched(pilot_backend, script, log)
        until_ended(pilot_backend, sub)
        line = until_written(log, "left ").split("left ", 1)[1].split()[0]
        assert line != "None", "the pilot would not know when its job ends"
        assert WALLTIME - 120 < float(line) <= WALLTIME

    def test_states_of_jobs_it_never_launched_are_empty(self, pilot_backend: PilotBackend, tmp_path: Path) -> None:
        gone = Submission(pilot_backend.name, "2147483646", 7, "contract", "", "", WALLTIME, time.time() - 10)
        assert pilot_backend.states([]) == {}
        assert pilot_backend.states([gone]) == {}
