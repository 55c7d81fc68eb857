"""``gridhpo pilots submit|status``: pilot jobs written as batch scripts and submitted to a backend.

Backends are registered by name in ``gridhpo.evaluation.backends`` (``slurm``: ``sbatch``, the
pilot reads its remaining time from Slurm; ``local``: a background process under ``timeout``).
Every submission is appended to ``GRIDHPO_HOME/pilots/submitted.jsonl`` so that ``status`` can
show it later.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gridhpo import config
from gridhpo.errors import ConfigError, UnknownNameError
from gridhpo.evaluation import backends, environment
from gridhpo.evaluation.backends import ENDED, JobState, PilotBackend, Submission

log = logging.getLogger(__name__)


def pilots_dir() -> Path:
    path = config.home() / "pilots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_script(backend: str | PilotBackend, task_id: int, site: str, walltime: float, path: Path, log_path: Path,
                 broker: str | None = None, runtime: str | None = None, token: str | None = None) -> None:
    """The batch script of one pilot, and next to it (``.env``, 0600) the secrets it needs: the
    broker URL, the task's token and the secret variables of this environment (AWS_*...). They
    reach the pilot through ``--env-file``, never on a command line (`ps`, /proc/PID/cmdline),
    and not in the environment of the launcher either (``timeout`` is the local pilot's parent,
    and its /proc/PID/environ is readable by the pilot's evaluations)."""
    chosen = backends.get(backend)() if isinstance(backend, str) else backend
    env_file = path.with_suffix(".env")
    secrets = environment.secret_part(os.environ)
    if broker:
        secrets["GRIDHPO_BROKER"] = broker
    if token:
        secrets["GRIDHPO_TOKEN"] = token
    environment.write_env_file(env_file, secrets)
    pilot = [shlex.quote(sys.executable), "-m", "gridhpo.cli", "pilot", "--task", str(task_id),
             "--site", shlex.quote(site), "--env-file", shlex.quote(str(env_file))]
    if runtime:
        pilot += ["--runtime", shlex.quote(runtime)]
    lines = ["#!/bin/bash", *chosen.header(task_id, walltime, log_path)]
    lines.append("# written by gridhpo pilots submit; its secrets are in " + shlex.quote(str(env_file)))
    for var in ("GRIDHPO_HOME",):
        if os.environ.get(var):
            lines.append(f"export {var}={shlex.quote(os.environ[var])}")
    lines.append("exec " + " ".join(chosen.pilot_command(pilot, site, walltime)))
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o700)


def submit(task_id: int, backend: str, count: int, walltime: float, site: str | None = None,
           extra: str = "", broker: str | None = None, runtime: str | None = None,
           token: str | None = None) -> list[Submission]:
    chosen = backends.get(backend)()
    if walltime <= 0:
        raise ConfigError(f"--walltime must be positive, not {walltime:g}s")
    if extra and not chosen.takes_extra:
        raise ConfigError(f"--extra passes options to sbatch and the like: --backend {backend} takes none")
    chosen.check()
    try:
        extra_args = shlex.split(extra)
    except ValueError as exc:
        raise ConfigError(f"--extra {extra!r}: {exc}") from None
    site = site or backend
    # sbatch hands its environment to the job, bash to timeout: the secrets go in the .env file
    launcher_env = environment.scrubbed(os.environ)
    out: list[Submission] = []
    for _ in range(count):
        stamp = f"{task_id}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        script = pilots_dir() / f"pilot-{stamp}.sh"
        log_path = pilots_dir() / f"pilot-{stamp}.log"
        write_script(chosen, task_id, site, walltime, script, log_path, broker, runtime, token)
        job_id = chosen.launch(script, log_path, launcher_env, extra_args)
        sub = Submission(backend, job_id, task_id, site, str(script), str(log_path), walltime, time.time())
        with (pilots_dir() / "submitted.jsonl").open("a") as f:
            f.write(json.dumps(asdict(sub)) + "\n")
        log.info("submitted pilot %s job %s for task %d", backend, job_id, task_id)
        out.append(sub)
    return out


def submissions(task_id: int | None = None) -> list[Submission]:
    path = pilots_dir() / "submitted.jsonl"
    if not path.exists():
        return []
    subs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            sub = Submission(**json.loads(line))
        except (ValueError, TypeError) as exc:
            log.warning("%s line %d ignored: %s", path, n, exc)
            continue
        if task_id is None or sub.task_id == task_id:
            subs.append(sub)
    return subs


def _states(subs: list[Submission]) -> dict[tuple[str, str], JobState]:
    """(backend, job id) -> state, one query per backend."""
    by_backend: dict[str, list[Submission]] = defaultdict(list)
    for s in subs:
        by_backend[s.backend].append(s)
    out: dict[tuple[str, str], JobState] = {}
    for name, group in by_backend.items():
        try:
            klass = backends.get(name)
        except UnknownNameError as exc:  # a backend no longer installed: its jobs are shown, unknown
            log.warning("%s", exc)
            out.update({(name, s.job_id): JobState("unknown", None, None) for s in group})
            continue
        out.update({(name, job): state for job, state in klass().states(group).items()})
    return out


def status(task_id: int | None = None) -> list[dict[str, Any]]:
    """Each submitted pilot with its state now (``ended`` once the batch system forgot it)."""
    subs = submissions(task_id)
    states = _states(subs)
    rows = []
    for s in subs:
        state = states.get((s.backend, s.job_id), ENDED)
        rows.append({"backend": s.backend, "job": s.job_id, "task": s.task_id, "site": s.site,
                     "walltime": s.walltime, "submitted": s.submitted_at, "log": s.log,
                     "state": state.state, "elapsed": state.elapsed, "left": state.left})
    return rows


__all__ = ["Submission", "pilots_dir", "status", "submissions", "submit", "write_script"]
