"""``gridhpo pilots submit|status``: pilot jobs written as batch scripts and submitted to a backend.

Backends: ``slurm`` (``sbatch``; the pilot reads its remaining time from Slurm, see batch.py)
and ``local`` (a background process under ``timeout``, which sends SIGTERM at the walltime as a
batch system would). Every submission is appended to ``GRIDHPO_HOME/pilots/submitted.jsonl`` so
that ``status`` can show it later.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gridhpo import config
from gridhpo.errors import ConfigError, EvaluationError, unknown_name
from gridhpo.evaluation import environment
from gridhpo.evaluation.batch import parse_slurm_duration

log = logging.getLogger(__name__)

BACKENDS = ("slurm", "local")
# what a local pilot gets after its walltime's SIGTERM before SIGKILL, as Slurm's KillWait
LOCAL_KILL_AFTER = 60


@dataclass
class Submission:
    backend: str
    job_id: str
    task_id: int
    site: str
    script: str
    log: str
    walltime: float
    submitted_at: float


def pilots_dir() -> Path:
    path = config.home() / "pilots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def slurm_time(seconds: float) -> str:
    """Seconds as Slurm's ``--time`` (``D-HH:MM:SS``), rounded up to a whole second."""
    s = int(-(-seconds // 1))
    days, s = divmod(s, 86400)
    return f"{days}-{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def write_script(backend: str, task_id: int, site: str, walltime: float, path: Path, log_path: Path,
                 broker: str | None = None, runtime: str | None = None, token: str | None = None) -> None:
    """The batch script of one pilot, and next to it (``.env``, 0600) the secrets it needs: the
    broker URL, the task's token and the secret variables of this environment (AWS_*...). They
    reach the pilot through ``--env-file``, never on a command line (`ps`, /proc/PID/cmdline),
    and not in the environment of the launcher either (``timeout`` is the local pilot's parent,
    and its /proc/PID/environ is readable by the pilot's evaluations)."""
    python = shlex.quote(sys.executable)
    env_file = path.with_suffix(".env")
    secrets = environment.secret_part(os.environ)
    if broker:
        secrets["GRIDHPO_BROKER"] = broker
    if token:
        secrets["GRIDHPO_TOKEN"] = token
    environment.write_env_file(env_file, secrets)
    pilot = [python, "-m", "gridhpo.cli", "pilot", "--task", str(task_id), "--site", shlex.quote(site),
             "--env-file", shlex.quote(str(env_file))]
    if runtime:
        pilot += ["--runtime", shlex.quote(runtime)]
    lines = ["#!/bin/bash"]
    if backend == "slurm":
        lines += [f"#SBATCH --job-name=gridhpo-{task_id}", f"#SBATCH --time={slurm_time(walltime)}",
                  f"#SBATCH --output={log_path}", "#SBATCH --cpus-per-task=1"]
        pilot += ["--pilot-id", f"{shlex.quote(site)}-slurm-$SLURM_JOB_ID"]
    else:
        # the pilot reads the job's end (batch.py) like under Slurm; timeout is the batch system's kill
        lines.append(f"export GRIDHPO_WALLTIME_END=$(( $(date +%s) + {int(-(-walltime // 1))} ))")
        pilot += ["--pilot-id", f"{shlex.quote(site)}-local-{uuid.uuid4().hex[:8]}"]
        pilot = ["timeout", "-s", "TERM", "-k", str(LOCAL_KILL_AFTER), f"{walltime:g}", *pilot]
    lines.append("# written by gridhpo pilots submit; its secrets are in " + shlex.quote(str(env_file)))
    for var in ("GRIDHPO_HOME",):
        if os.environ.get(var):
            lines.append(f"export {var}={shlex.quote(os.environ[var])}")
    lines.append("exec " + " ".join(pilot))
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o700)


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EvaluationError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        raise EvaluationError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[:500]}")
    return proc.stdout


def submit(task_id: int, backend: str, count: int, walltime: float, site: str | None = None,
           extra: str = "", broker: str | None = None, runtime: str | None = None,
           token: str | None = None) -> list[Submission]:
    if backend not in BACKENDS:
        raise unknown_name("pilot backend", backend, BACKENDS)
    if walltime <= 0:
        raise ConfigError(f"--walltime must be positive, not {walltime:g}s")
    if extra and backend != "slurm":
        raise ConfigError("--extra passes options to sbatch: only with --backend slurm")
    if backend == "slurm" and shutil.which("sbatch") is None:
        raise EvaluationError("--backend slurm needs sbatch on PATH (run this on a Slurm login node)")
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
        write_script(backend, task_id, site, walltime, script, log_path, broker, runtime, token)
        if backend == "slurm":
            job_id = _run(["sbatch", "--parsable", *extra_args, str(script)], "sbatch",
                          launcher_env).strip().split(";")[0]
        else:
            with log_path.open("ab") as logf:
                proc = subprocess.Popen(["bash", str(script)], stdout=logf, stderr=subprocess.STDOUT, env=launcher_env,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            job_id = str(proc.pid)
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


def _slurm_states(job_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not job_ids or shutil.which("squeue") is None:
        return {}
    out = _run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%M|%L"], "squeue")
    states: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            states[parts[0]] = {"state": parts[1].lower(), "elapsed": parse_slurm_duration(parts[2]),
                                "left": parse_slurm_duration(parts[3])}
    return states


def _local_alive(pid: str) -> bool:
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


def status(task_id: int | None = None) -> list[dict[str, Any]]:
    """Each submitted pilot with its state now (``ended`` once the batch system forgot it)."""
    subs = submissions(task_id)
    slurm = _slurm_states([s.job_id for s in subs if s.backend == "slurm"])
    rows = []
    for s in subs:
        row: dict[str, Any] = {"backend": s.backend, "job": s.job_id, "task": s.task_id, "site": s.site,
                               "walltime": s.walltime, "submitted": s.submitted_at, "log": s.log}
        if s.backend == "slurm":
            row.update(slurm.get(s.job_id, {"state": "ended", "elapsed": None, "left": None}))
        else:
            alive = _local_alive(s.job_id)
            row.update({"state": "running" if alive else "ended",
                        "elapsed": time.time() - s.submitted_at if alive else None,
                        "left": max(0.0, s.submitted_at + s.walltime - time.time()) if alive else None})
        rows.append(row)
    return rows
