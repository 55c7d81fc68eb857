"""Pilots as Slurm jobs: ``sbatch`` submits, ``squeue`` tells their state and time left."""
from __future__ import annotations

import getpass
import logging
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from gridhpo.errors import EvaluationError
from gridhpo.evaluation.backends._base import JobState, PilotBackend, Submission, run_command, seconds_to

log = logging.getLogger(__name__)

_LEFT = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")


def parse_slurm_duration(text: str) -> float | None:
    """A Slurm duration (``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``) in seconds; None for UNLIMITED and the like."""
    m = _LEFT.match(text.strip())
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def slurm_time(seconds: float) -> str:
    """Seconds as Slurm's ``--time`` (``D-HH:MM:SS``), rounded up to a whole second."""
    s = int(-(-seconds // 1))
    days, s = divmod(s, 86400)
    return f"{days}-{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def slurm_remaining(job_id: str) -> float | None:
    """The time left to Slurm job ``job_id``, from squeue; None when unlimited or unknown."""
    squeue = shutil.which("squeue")
    if squeue is None:
        log.warning("SLURM_JOB_ID is set but squeue is not on PATH: walltime unknown")
        return None
    try:
        proc = subprocess.run([squeue, "-h", "-j", job_id, "-o", "%L"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("squeue for job %s failed (%s): walltime unknown", job_id, exc)
        return None
    if proc.returncode != 0:
        log.warning("squeue for job %s failed: %s", job_id, proc.stderr.strip()[:200])
        return None
    return parse_slurm_duration(proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else "")


class SlurmBackend(PilotBackend):
    name = "slurm"
    takes_extra = True

    def check(self) -> None:
        if shutil.which("sbatch") is None:
            raise EvaluationError("--backend slurm needs sbatch on PATH (run this on a Slurm login node)")

    def header(self, task_id: int, walltime: float, log_path: Path) -> list[str]:
        return [f"#SBATCH --job-name=gridhpo-{task_id}", f"#SBATCH --time={slurm_time(walltime)}",
                f"#SBATCH --output={log_path}", "#SBATCH --cpus-per-task=1"]

    def pilot_command(self, pilot: list[str], site: str, walltime: float) -> list[str]:
        # no --walltime: the pilot asks Slurm (walltime_left), which knows about extensions too
        return [*pilot, "--pilot-id", f"{shlex.quote(site)}-slurm-$SLURM_JOB_ID"]

    def launch(self, script: Path, log_path: Path, env: dict[str, str], extra: list[str]) -> str:
        return run_command(["sbatch", "--parsable", *extra, str(script)], "sbatch", env).strip().split(";")[0]

    def states(self, submissions: list[Submission]) -> dict[str, JobState]:
        job_ids = {s.job_id for s in submissions}
        if not job_ids or shutil.which("squeue") is None:
            return {}
        # this user's jobs, not ``-j IDS``: squeue refuses the whole list once one job is purged
        out = run_command(["squeue", "-h", "-u", getpass.getuser(), "-o", "%i|%T|%M|%L"], "squeue")
        states: dict[str, JobState] = {}
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 4 and parts[0] in job_ids:
                states[parts[0]] = JobState(parts[1].lower(), parse_slurm_duration(parts[2]),
                                            parse_slurm_duration(parts[3]))
        return states

    @classmethod
    def walltime_left(cls, env: Mapping[str, str], now: float) -> float | None:
        if env.get("SLURM_JOB_END_TIME"):
            return seconds_to(env["SLURM_JOB_END_TIME"], "SLURM_JOB_END_TIME", now)
        if env.get("SLURM_JOB_ID"):
            left = slurm_remaining(env["SLURM_JOB_ID"])
            if left is not None:
                log.info("Slurm job %s has %.0fs left", env["SLURM_JOB_ID"], left)
            return left
        return None
