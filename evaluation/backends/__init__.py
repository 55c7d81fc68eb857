"""Pilot batch backends by name: ``gridhpo pilots submit --backend NAME``.

A third backend is one module with a ``PilotBackend`` subclass and one line here; it passes
``gridhpo.testing.backends.BackendContract`` (docs/architecture.md)."""
from __future__ import annotations

from gridhpo import registry
from gridhpo.evaluation.backends._base import ENDED, JobState, PilotBackend, Submission

REGISTRY: dict[str, str] = {
    "local": "gridhpo.evaluation.backends.local:LocalBackend",
    "slurm": "gridhpo.evaluation.backends.slurm:SlurmBackend",
}


def get(name: str) -> type[PilotBackend]:
    klass: type[PilotBackend] = registry.load("pilot backend", name, REGISTRY)
    return klass


__all__ = ["ENDED", "REGISTRY", "JobState", "PilotBackend", "Submission", "get"]
