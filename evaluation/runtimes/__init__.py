"""Runtimes by name; the pilot picks one from the point's evaluation section."""
from __future__ import annotations

from typing import TYPE_CHECKING

from gridhpo import registry
from gridhpo.evaluation.runtimes._base import Handle, Job, Runtime

if TYPE_CHECKING:
    from gridhpo.protocol.evaluation import EvaluationSpec

REGISTRY: dict[str, str] = {
    "process": "gridhpo.evaluation.runtimes.process:ProcessRuntime",
    "python": "gridhpo.evaluation.runtimes.inprocess:InProcessRuntime",
    "docker": "gridhpo.evaluation.runtimes.docker:DockerRuntime",
    "apptainer": "gridhpo.evaluation.runtimes.apptainer:ApptainerRuntime",
}


def get(name: str) -> type[Runtime]:
    klass: type[Runtime] = registry.load("runtime", name, REGISTRY)
    return klass


def choose(evaluation: EvaluationSpec, preferred: str | None = None) -> str:
    """The runtime for an evaluation section: ``python`` in-process, an image in a container
    (the site's ``preferred`` container runtime), else a plain process."""
    if evaluation.python:
        return "python"
    if evaluation.image:
        return preferred or "docker"
    return "process"


__all__ = ["REGISTRY", "Handle", "Job", "Runtime", "choose", "get"]
