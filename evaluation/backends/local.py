"""Pilots as background processes on this machine, under ``timeout``: it sends SIGTERM at the
walltime and SIGKILL a while later, as a batch system would; the job's id is its process id."""
from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from pathlib import Path

from gridhpo.evaluation.backends._base import JobState, PilotBackend, Submission

# what a local pilot gets after its walltime's SIGTERM before SIGKILL, as Slurm's KillWait
LOCAL_KILL_AFTER = 60


def _whole(seconds: float) -> int:
    return int(-(-seconds // 1))


def local_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a finished child of this very process is a zombie until reaped: not alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class LocalBackend(PilotBackend):
    name = "local"

    def header(self, task_id: int, walltime: float, log_path: Path) -> list[str]:
        # the pilot reads the job's end (batch.py) as under Slurm; timeout is the batch system's kill
        return [f"export GRIDHPO_WALLTIME_END=$(( $(date +%s) + {_whole(walltime)} ))"]

    def pilot_command(self, pilot: list[str], site: str, walltime: float) -> list[str]:
        pilot = [*pilot, "--pilot-id", f"{shlex.quote(site)}-local-{uuid.uuid4().hex[:8]}"]
        return ["timeout", "-s", "TERM", "-k", str(LOCAL_KILL_AFTER), f"{walltime:g}", *pilot]

    def launch(self, script: Path, log_path: Path, env: dict[str, str], extra: list[str]) -> str:
        with log_path.open("ab") as logf:
            proc = subprocess.Popen(["bash", str(script)], stdout=logf, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        return str(proc.pid)

    def states(self, submissions: list[Submission]) -> dict[str, JobState]:
        now = time.time()
        return {s.job_id: JobState("running", now - s.submitted_at, max(0.0, s.submitted_at + s.walltime - now))
                for s in submissions if local_alive(s.job_id)}
