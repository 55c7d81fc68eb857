"""What a pilot learns from the batch system it runs under: how long it has left.

A pilot started without ``--walltime`` asks here. Slurm gives the job's remaining time
(``squeue -h -j $SLURM_JOB_ID -o %L``, or ``SLURM_JOB_END_TIME`` where Slurm sets it);
``GRIDHPO_WALLTIME_END`` (Unix time) lets any other launcher say when the pilot must be gone.
The pilot then stops taking points that cannot fit and stops its evaluation gracefully before
the batch system kills it.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping

from gridhpo.errors import ConfigError

log = logging.getLogger(__name__)

_LEFT = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")


def parse_slurm_duration(text: str) -> float | None:
    """A Slurm duration (``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``) in seconds; None for UNLIMITED and the like."""
    m = _LEFT.match(text.strip())
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _from_end(value: str, name: str, now: float) -> float:
    try:
        end = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a Unix time in seconds") from None
    return end - now


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


def remaining_walltime(env: Mapping[str, str] | None = None, now: float | None = None) -> float | None:
    """Seconds this process has left according to its batch system, or None when it has no limit."""
    env = os.environ if env is None else env
    now = time.time() if now is None else now
    if env.get("GRIDHPO_WALLTIME_END"):
        return _from_end(env["GRIDHPO_WALLTIME_END"], "GRIDHPO_WALLTIME_END", now)
    if env.get("SLURM_JOB_END_TIME"):
        return _from_end(env["SLURM_JOB_END_TIME"], "SLURM_JOB_END_TIME", now)
    if env.get("SLURM_JOB_ID"):
        left = slurm_remaining(env["SLURM_JOB_ID"])
        if left is not None:
            log.info("Slurm job %s has %.0fs left", env["SLURM_JOB_ID"], left)
        return left
    return None
