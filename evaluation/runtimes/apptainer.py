"""Apptainer (or SingularityCE) through its command line, for HPC sites without a container daemon.

The image is a SIF file, a sandbox directory or a ``docker://`` / ``oras://`` reference, run as
``apptainer exec`` (with a command) or ``apptainer run`` (the image's runscript) with the work
directory bound at the same path and used as the working directory. ``--cleanenv`` keeps the
pilot's environment out; only ``job.env`` goes in. The container is a child process of the
pilot in its own process group, so stopping it is stopping a process.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from typing import ClassVar

from gridhpo.errors import EvaluationError
from gridhpo.evaluation.runtimes._base import Handle, Job, Runtime
from gridhpo.evaluation.runtimes.process import SECRET_VARIABLES, ProcessHandle

log = logging.getLogger(__name__)


class ApptainerRuntime(Runtime):
    name = "apptainer"
    binaries: ClassVar[tuple[str, ...]] = ("apptainer", "singularity")

    def __init__(self) -> None:
        self._live: list[ProcessHandle] = []

    def binary(self) -> str:
        for name in self.binaries:
            path = shutil.which(name)
            if path:
                return path
        raise EvaluationError(f"the apptainer runtime needs one of {', '.join(self.binaries)} on PATH")

    def check(self, job: Job) -> None:
        if not job.image:
            raise EvaluationError("the apptainer runtime needs evaluation.image")
        self.binary()
        local = not any(job.image.startswith(p) for p in ("docker://", "oras://", "library://", "shub://"))
        if local and not os.path.exists(job.image):
            raise EvaluationError(f"image {job.image!r} not found (a SIF file or sandbox directory on this site)")

    def argv(self, job: Job) -> list[str]:
        assert job.image is not None
        workdir = str(job.workdir)
        argv = [self.binary(), "exec" if job.command else "run", "--cleanenv", "--containall",
                "--bind", f"{workdir}:{workdir}", "--pwd", workdir]
        for key, value in job.env.items():
            if key not in SECRET_VARIABLES:
                argv += ["--env", f"{key}={value}"]
        if int(job.resources.get("gpus") or 0) > 0:
            argv.append("--nv")
        argv.append(job.image)
        if job.command:
            argv += ["/bin/sh", "-c", job.command]
        return argv

    def start(self, job: Job) -> Handle:
        self.check(job)
        out = (job.workdir / "stdout.log").open("wb")
        err = (job.workdir / "stderr.log").open("wb")
        # apptainer itself needs PATH and HOME; what it passes on is decided by --cleanenv/--env
        env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        try:
            proc = subprocess.Popen(self.argv(job), cwd=job.workdir, env=env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise EvaluationError(f"cannot start apptainer for {job.image!r}: {exc}") from exc
        finally:
            out.close()
            err.close()
        handle = ProcessHandle(proc, job.workdir)
        self._live = [h for h in self._live if h.poll() is None] + [handle]
        return handle

    def close(self) -> None:
        for h in self._live:
            h.cleanup()
        self._live.clear()
