"""The pilot batch backend interface: write a pilot's job script, submit it, ask its state.

A backend is one module with one ``PilotBackend`` subclass, registered by name in
``gridhpo.evaluation.backends.REGISTRY``; ``gridhpo.testing.backends`` is the suite it must pass.
"""
from __future__ import annotations

import abc
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from gridhpo.errors import ConfigError, EvaluationError


@dataclass
class Submission:
    """One pilot job, as appended to ``GRIDHPO_HOME/pilots/submitted.jsonl``."""

    backend: str
    job_id: str
    task_id: int
    site: str
    script: str
    log: str
    walltime: float
    submitted_at: float


@dataclass(frozen=True)
class JobState:
    """A job's state now (lower case, as its batch system names it), how long it has run and
    how long it has left (None where unknown)."""

    state: str
    elapsed: float | None
    left: float | None


ENDED = JobState("ended", None, None)  # a job its batch system no longer knows


class PilotBackend(abc.ABC):
    """Contract, tested for every backend by ``gridhpo.testing.backends.BackendContract``:

    - ``header`` and ``pilot_command`` make the job script: the script holds no secret (the
      pilot reads them from its ``--env-file``), and the pilot learns its end from the batch
      system (``walltime_left``) or from ``GRIDHPO_WALLTIME_END``, never from a ``--walltime``.
    - ``launch`` starts the script and returns at once with the job's id; the job's output
      goes to the log path given.
    - ``states`` knows every job it launched until it ends; a job it no longer knows has ended.
    - ``check`` raises EvaluationError where the backend cannot submit (its client missing).
    """

    name: ClassVar[str] = ""
    # whether ``--extra`` (options for the batch system's submit command) means anything here
    takes_extra: ClassVar[bool] = False

    def check(self) -> None:
        """Raise EvaluationError where this backend cannot submit from here."""

    @abc.abstractmethod
    def header(self, task_id: int, walltime: float, log_path: Path) -> list[str]:
        """The script's lines after ``#!/bin/bash``: the batch system's directives, exports."""

    @abc.abstractmethod
    def pilot_command(self, pilot: list[str], site: str, walltime: float) -> list[str]:
        """The pilot's command line (shell-quoted words) completed with its ``--pilot-id``,
        unique per job, and any wrapper the backend runs it under."""

    @abc.abstractmethod
    def launch(self, script: Path, log_path: Path, env: dict[str, str], extra: list[str]) -> str:
        """Submit ``script`` with the environment ``env``; returns the job's id."""

    @abc.abstractmethod
    def states(self, submissions: list[Submission]) -> dict[str, JobState]:
        """Job id -> state of the given jobs of this backend that have not ended."""

    @classmethod
    def walltime_left(cls, env: Mapping[str, str], now: float) -> float | None:
        """Seconds left to the job this process runs in, where this batch system tells; else None."""
        return None


def seconds_to(end: str, name: str, now: float) -> float:
    """The seconds from ``now`` to the Unix time ``end`` read from the variable ``name``."""
    try:
        return float(end) - now
    except ValueError:
        raise ConfigError(f"{name}={end!r} is not a Unix time in seconds") from None


def run_command(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    """A batch system client's stdout; EvaluationError naming ``what`` when it fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EvaluationError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        raise EvaluationError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[:500]}")
    return proc.stdout
