"""What a pilot learns from the batch system it runs under: how long it has left.

A pilot started without ``--walltime`` asks here. ``GRIDHPO_WALLTIME_END`` (Unix time) lets any
launcher say when the pilot must be gone; otherwise each pilot backend is asked in turn (Slurm
gives the job's remaining time: ``SLURM_JOB_END_TIME``, or ``squeue -h -j $SLURM_JOB_ID -o %L``).
The pilot then stops taking points that cannot fit and stops its evaluation gracefully before
the batch system kills it.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping

from gridhpo.evaluation import backends
from gridhpo.evaluation.backends._base import seconds_to
from gridhpo.evaluation.backends.slurm import parse_slurm_duration, slurm_remaining


def remaining_walltime(env: Mapping[str, str] | None = None, now: float | None = None) -> float | None:
    """Seconds this process has left according to its batch system, or None when it has no limit."""
    env = os.environ if env is None else env
    now = time.time() if now is None else now
    if env.get("GRIDHPO_WALLTIME_END"):
        return seconds_to(env["GRIDHPO_WALLTIME_END"], "GRIDHPO_WALLTIME_END", now)
    for name in backends.REGISTRY:
        left = backends.get(name).walltime_left(env, now)
        if left is not None:
            return left
    return None


__all__ = ["parse_slurm_duration", "remaining_walltime", "slurm_remaining"]
