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
    timeout: float | None  # seconds an attempt may run; None: no limit
    grace: float  # seconds between SIGTERM and kill when the pilot stops an evaluation; 0 allowed
    heartbeat: float  # seconds between heartbeats; more than 0
    metric: str  # the objective's key in output.json

    @classmethod
    def of(cls, evaluation: Mapping[str, Any], objective: Mapping[str, Any]) -> AttemptSettings:
        timeout = evaluation["timeout"] if "timeout" in evaluation else Evaluation.timeout
        return cls(
            timeout=None if timeout is None else _seconds(timeout, "timeout", positive=True),
            grace=_seconds(evaluation["grace"] if "grace" in evaluation else Evaluation.grace, "grace",
                           positive=False),
            heartbeat=_seconds(evaluation["heartbeat"] if "heartbeat" in evaluation else Evaluation.heartbeat,
                               "heartbeat", positive=True),
            metric=_metric(objective["metric"] if "metric" in objective else Objective.metric),
        )


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
