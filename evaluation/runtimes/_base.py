"""The runtime interface: start one evaluation in a prepared work directory, watch it, stop it."""
from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class Job:
    """What a runtime needs to run one attempt. ``workdir`` holds input.json and gridhpo.json
    and becomes the evaluation's working directory; ``env`` holds the GRIDHPO_* variables.
    ``metric`` names what a bare number returned by an in-process objective is. ``in_memory``
    (in-process runtimes only): the caller made no work directory and takes the output from
    ``Handle.output()``, so nothing is written; the pilot runs cheap objectives this way."""

    workdir: Path
    command: str | None
    image: str | None = None
    python: str | None = None
    source_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    name: str = "gridhpo-eval"
    metric: str = "loss"
    in_memory: bool = False


def task_dirs(job: Job) -> list[str]:
    """The task's folder (``evaluation.source_dir``, $GRIDHPO_TASK_DIR) when this machine has it:
    mounted read-only at its own path, as phpo mounts its sandbox, so the evaluation's scripts
    and the phpo sandbox copy are found inside the image. Not when it is, or holds, the work
    directory (the work directory's own mount decides there)."""
    src = job.source_dir
    if not src or not os.path.isabs(src) or not os.path.isdir(src):
        return []
    real, work = os.path.realpath(src), os.path.realpath(job.workdir)
    if real == work or work.startswith(real.rstrip("/") + "/") or real.startswith(work.rstrip("/") + "/"):
        return []
    return [src]


class Handle(abc.ABC):
    """A running evaluation."""

    @abc.abstractmethod
    def poll(self) -> int | None:
        """The exit code once it has ended, else None. Never blocks."""

    @abc.abstractmethod
    def stop(self, grace: float) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then kill; returns the exit code."""

    @abc.abstractmethod
    def output_tail(self, lines: int = 20) -> str:
        """The last lines the evaluation wrote to stderr (and stdout), for a failed point."""

    def cleanup(self) -> None:
        """Release what the runtime holds (a container, log files); idempotent."""

    def output(self) -> dict[str, Any] | None:
        """The output.json an in-process evaluation returned in memory, once it has ended with
        code 0; None for an evaluation that writes output.json in its work directory."""
        return None


class Runtime(abc.ABC):
    """Contract, tested for every runtime by ``tests/unit/test_runtime_contract.py``:

    - ``start(job)`` returns at once with a Handle; the evaluation runs with ``job.workdir``
      as its working directory and ``job.env`` in its environment (and never the
      bookkeeping or broker credentials of the pilot).
    - ``Handle.poll`` reports the exit code once it has ended; ``Handle.stop`` sends
      SIGTERM, waits the grace period, then kills, so an evaluation that saves its state on
      SIGTERM loses nothing.
    - An ``in_process`` runtime ends its evaluation within ``start`` and also gives its
      output in memory (``Handle.output``); with ``job.in_memory`` it writes no file.
    - A runtime that cannot work at this site (daemon unreachable, image missing) raises
      EvaluationError from ``check`` or ``start``: the pilot reports that, it is not a
      failed point.
    """

    name: ClassVar[str] = ""
    in_process: ClassVar[bool] = False

    def check(self, job: Job) -> None:
        """Raise EvaluationError where this runtime cannot run ``job`` here."""

    @abc.abstractmethod
    def start(self, job: Job) -> Handle:
        ...

    def close(self) -> None:
        """Stop everything this runtime started (a pilot's own shutdown)."""
