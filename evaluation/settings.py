"""What a pilot uses of a point's evaluation spec and objective for one attempt.

The spec is the protocol's ``EvaluationSpec`` (``gridhpo.protocol.evaluation``), whose
defaults are defined there once and which ``parse_point`` has already checked: a value given
is used as given, so ``grace: 0`` means no grace period.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from gridhpo.protocol.evaluation import EvaluationSpec, PointObjective


@dataclass(frozen=True)
class AttemptSettings:
    command: str | None  # a shell command (process runtime) or the container's command
    image: str | None  # a container image
    python: str | None  # module:function, evaluated in the pilot
    source_dir: str | None  # GRIDHPO_TASK_DIR
    env: dict[str, str]  # the task's extra environment variables
    resources: dict[str, Any]  # cpus, gpus, memory, for container runtimes
    timeout: float | None  # seconds an attempt may run; None: no limit
    grace: float  # seconds between SIGTERM and kill when the pilot stops an evaluation; 0 allowed
    heartbeat: float  # seconds between heartbeats; more than 0
    metric: str  # the objective's key in output.json

    @classmethod
    def of(cls, evaluation: Mapping[str, Any], objective: Mapping[str, Any]) -> AttemptSettings:
        """From the wire forms of the two sections; a MessageError names a bad field."""
        return cls.typed(EvaluationSpec.from_wire(evaluation), PointObjective.from_wire(objective))

    @classmethod
    def typed(cls, ev: EvaluationSpec, objective: PointObjective) -> AttemptSettings:
        return cls(command=ev.command, image=ev.image, python=ev.python, source_dir=ev.source_dir,
                   env=dict(ev.env), resources=asdict(ev.resources), timeout=ev.timeout, grace=ev.grace,
                   heartbeat=ev.heartbeat, metric=objective.metric)
