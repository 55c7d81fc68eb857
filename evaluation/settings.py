"""What a pilot reads of a point message's evaluation and objective sections, typed.

The defaults are the task file's (``gridhpo.steering.taskfile``): one definition.
A value given is used as given, so ``grace: 0`` means no grace period; values out of range
(a point message not made by a steering of ours) fail the point with the reason.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gridhpo.errors import MessageError
from gridhpo.steering.taskfile import Evaluation, Objective


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
        def given(key: str) -> Any:
            return evaluation[key] if key in evaluation else getattr(_DEFAULTS, key)

        timeout = given("timeout")
        env = given("env")
        resources = evaluation["resources"] if "resources" in evaluation else {}
        if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
            raise MessageError(f"evaluation.env: {str(env)[:200]} is not a mapping of strings")
        if not isinstance(resources, Mapping):
            raise MessageError(f"evaluation.resources: {str(resources)[:200]} is not a mapping")
        return cls(
            command=_text(given("command"), "command"),
            image=_text(given("image"), "image"),
            python=_text(given("python"), "python"),
            source_dir=_text(given("source_dir"), "source_dir"),
            env={str(k): v for k, v in env.items()},
            resources=dict(resources),
            timeout=None if timeout is None else _seconds(timeout, "timeout", positive=True),
            grace=_seconds(given("grace"), "grace", positive=False),
            heartbeat=_seconds(given("heartbeat"), "heartbeat", positive=True),
            metric=_metric(objective["metric"] if "metric" in objective else Objective.metric),
        )


_DEFAULTS = Evaluation()


def _text(value: object, key: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise MessageError(f"evaluation.{key}: {str(value)[:200]} is not text")
    return value


def _seconds(value: object, key: str, positive: bool) -> float:
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value < 0 or (positive and value == 0)):
        raise MessageError(f"evaluation.{key}: {value!r} is not a number of seconds "
                           + ("above 0" if positive else "of 0 or more"))
    return float(value)


def _metric(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise MessageError(f"objective.metric: {value!r} is not a key name")
    return value
