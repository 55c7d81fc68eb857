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
from typing import ClassVar

from gridhpo.errors import EvaluationError
from gridhpo.evaluation.environment import is_secret, scrubbed
from gridhpo.evaluation.runtimes._base import Handle, Job, task_dirs
from gridhpo.evaluation.runtimes.process import ProcessRuntime

log = logging.getLogger(__name__)


class ApptainerRuntime(ProcessRuntime):
    """A process runtime whose process is ``apptainer exec``: starting, watching and stopping
    are the process runtime's."""

    name = "apptainer"
    binaries: ClassVar[tuple[str, ...]] = ("apptainer", "singularity")

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
        for d in task_dirs(job):  # the task's folder, read-only (_base.task_dirs)
            argv += ["--bind", f"{d}:{d}:ro"]
        for key, value in job.env.items():
            if not is_secret(key, value):  # the rule of every runtime (evaluation/environment.py)
                argv += ["--env", f"{key}={value}"]
        if int(job.resources.get("gpus") or 0) > 0:
            argv.append("--nv")
        argv.append(job.image)
        if job.command:
            argv += ["/bin/sh", "-c", job.command]
        return argv

    def start(self, job: Job) -> Handle:
        self.check(job)
        # apptainer itself needs PATH and HOME; what it passes on is decided by --cleanenv/--env
        env = scrubbed(os.environ)
        return self.spawn(job, self.argv(job), env, f"apptainer for {job.image!r}")
