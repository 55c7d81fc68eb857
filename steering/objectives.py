"""A task's objectives and constraints (the task file's ``objective`` and ``constraints``).

``objective`` is one mapping (single-objective search) or a list of them (multi-objective
search: every value is kept, and the result is a Pareto front rather than one best point).
The first objective is the one a pilot checks in output.json (``PointObjective``); the others
and every constraint's metric are read by the steering from the same result's other keys.
A point is *feasible* when every constraint holds; an infeasible point is recorded with its
values but is never the best point nor in the front, and the optimiser is told by how much it
missed (``Outcome.violations``: above 0 is violated, Optuna's convention).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.protocol.evaluation import OBJECTIVE_MODES, PointObjective

MAX_OBJECTIVES = 16
MAX_CONSTRAINTS = 64


@dataclass(frozen=True)
class Objective:
    metric: str = PointObjective.metric
    mode: str = PointObjective.mode
    failure_value: float | None = None
    # phpo's "very large loss": a point whose attempts were all used (interrupted or lost each
    # time, budget.max_attempts) ends failed with this value, told to the optimiser as a result
    exhausted_value: float | None = None


@dataclass(frozen=True)
class Constraint:
    """``metric`` must be at least ``min`` and at most ``max`` (either may be left out)."""

    metric: str
    min: float | None = None
    max: float | None = None

    def violation(self, value: float) -> float:
        """How far ``value`` is outside the bounds (0 or below: within them)."""
        over = value - self.max if self.max is not None else -math.inf
        under = self.min - value if self.min is not None else -math.inf
        return max(over, under)

    def describe(self, value: float) -> str:
        bound = f"> max {self.max:g}" if self.max is not None and value > self.max else f"< min {self.min:g}"
        return f"{self.metric} {value:g} {bound}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Outcome:
    """A finished point's values: each objective's (task order, as reported), each constraint's
    violation, and every such metric by name (what the bookkeeping keeps)."""

    values: tuple[float, ...]
    violations: tuple[float, ...]
    recorded: dict[str, float]
    why_infeasible: str | None = None

    @property
    def feasible(self) -> bool:
        return self.why_infeasible is None


@dataclass(frozen=True)
class Goals:
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(o.mode for o in self.objectives)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(o.metric for o in self.objectives)

    @property
    def plain(self) -> bool:
        """One objective and no constraint: the steering needs nothing beyond a point's value."""
        return not self.multi and not self.constraints

    def outcome(self, value: float, others: Mapping[str, Any]) -> Outcome | str:
        """The outcome of a result (``value``: the first objective's; ``others``: the rest of
        output.json), or why the point failed (a metric missing or not a finite number)."""
        recorded = {self.objectives[0].metric: float(value)}
        for metric in [o.metric for o in self.objectives[1:]] + [c.metric for c in self.constraints]:
            if metric in recorded:
                continue
            v = others[metric] if metric in others else None
            if not isinstance(v, (int, float)) or not finite(v):
                kind = "objective" if metric in self.metrics else "constraint"
                what = "is missing" if v is None else f"is {str(v)[:100]!r}, not a finite number"
                return f"{kind} metric {metric!r} {what}"
            recorded[metric] = float(v)
        violations = tuple(c.violation(recorded[c.metric]) for c in self.constraints)
        broken = [c.describe(recorded[c.metric]) for c, v in zip(self.constraints, violations, strict=True) if v > 0]
        return Outcome(tuple(recorded[m] for m in self.metrics), violations, recorded,
                       f"infeasible: {', '.join(broken)}" if broken else None)

    def recorded_outcome(self, recorded: Mapping[str, Any]) -> Outcome | None:
        """The outcome as stored with a point (``metric_values``), None when incomplete (a
        point recorded before its task had these objectives)."""
        if not recorded or not all(finite(recorded[m]) if m in recorded else False
                                   for m in self.metrics + tuple(c.metric for c in self.constraints)):
            return None
        first = self.objectives[0].metric
        result = self.outcome(float(recorded[first]), recorded)
        return result if isinstance(result, Outcome) else None

    def to_stored(self) -> Any:
        """The task file's form: one mapping, or a list for several objectives."""
        return [asdict(o) for o in self.objectives] if self.multi else asdict(self.objectives[0])


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --------------------------------------------------------------------------- parsing

_OBJECTIVE_KEYS = ("metric", "mode", "failure_value", "exhausted_value")
# values told for a point without a result: one number, so one objective without constraints
_STAND_INS = ("failure_value", "exhausted_value")
_CONSTRAINT_KEYS = ("metric", "min", "max")


def parse_goals(objective: object, constraints: object, source: str) -> Goals:
    """The ``objective`` and ``constraints`` sections; every error one line naming the file and field."""
    def fail(where: str, msg: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: {msg}")

    if isinstance(objective, list):
        if not objective:
            raise fail("objective", "is an empty list (give one objective, or a list of at least two)")
        if len(objective) > MAX_OBJECTIVES:
            raise fail("objective", f"has {len(objective)} objectives, over the limit of {MAX_OBJECTIVES}")
        objectives = tuple(_objective(o, f"objective[{i}]", fail) for i, o in enumerate(objective))
        if len(objectives) > 1:
            for i, o in enumerate(objectives):
                for key in _STAND_INS:
                    if getattr(o, key) is not None:
                        raise fail(f"objective[{i}].{key}",
                                   "is for a single objective (a failed point has no values in multi-objective search)")
    else:
        objectives = (_objective(objective, "objective", fail),)
    seen: set[str] = set()
    for i, o in enumerate(objectives):
        if o.metric in seen:
            raise fail(f"objective[{i}].metric", f"{o.metric!r} is named twice")
        seen.add(o.metric)
    if constraints is None:
        return Goals(objectives)
    for key in _STAND_INS:
        if getattr(objectives[0], key) is not None:
            raise fail(f"objective.{key}", "cannot go with constraints (a failed point has no constraint "
                                           "values to judge it by)")
    if not isinstance(constraints, list):
        raise fail("constraints", "must be a list, e.g. [{metric: memory_gb, max: 16}]")
    if len(constraints) > MAX_CONSTRAINTS:
        raise fail("constraints", f"has {len(constraints)} constraints, over the limit of {MAX_CONSTRAINTS}")
    return Goals(objectives, tuple(_constraint(c, f"constraints[{i}]", fail) for i, c in enumerate(constraints)))


def _keys(raw: object, where: str, known: tuple[str, ...], fail: Any) -> Mapping[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise fail(where, f"must be a mapping with {', '.join(known)}")
    for key in raw:
        if key not in known:
            raise fail(where, str(unknown_name("key", str(key), known)))
    return raw


def _metric(raw: Mapping[str, Any], where: str, fail: Any, default: str | None) -> str:
    v = raw["metric"] if raw.get("metric") is not None else default
    if not isinstance(v, str) or not v.strip():
        raise fail(f"{where}.metric", f"{v!r} is not a non-empty string" if v is not None else
                   "is missing (the key of the value in output.json)")
    return v


def _objective(raw: object, where: str, fail: Any) -> Objective:
    o = _keys(raw, where, _OBJECTIVE_KEYS, fail)
    mode = o["mode"] if o.get("mode") is not None else PointObjective.mode
    if mode not in OBJECTIVE_MODES:
        raise fail(f"{where}.mode", f"{mode!r} is not one of {', '.join(OBJECTIVE_MODES)}")
    stand_ins: dict[str, float | None] = {}
    for key in _STAND_INS:
        v = o.get(key)
        if v is not None and not finite(v):
            # the task file's own wording for a number (task_section.Section.number)
            raise fail(f"{where}.{key}", f"{v!r} is not a number >= -inf")
        stand_ins[key] = None if v is None else float(v)
    return Objective(metric=_metric(o, where, fail, PointObjective.metric), mode=mode, **stand_ins)


def _constraint(raw: object, where: str, fail: Any) -> Constraint:
    c = _keys(raw, where, _CONSTRAINT_KEYS, fail)
    bounds: dict[str, float | None] = {}
    for key in ("min", "max"):
        v = c.get(key)
        if v is not None and not finite(v):
            raise fail(f"{where}.{key}", f"{v!r} is not a finite number")
        bounds[key] = None if v is None else float(v)
    low, high = bounds["min"], bounds["max"]
    if low is None and high is None:
        raise fail(where, "needs min, max or both (e.g. {metric: memory_gb, max: 16})")
    if low is not None and high is not None and low > high:
        raise fail(f"{where}.max", f"{high:g} is less than min ({low:g})")
    return Constraint(_metric(c, where, fail, None), low, high)


def goals_of(spec: Mapping[str, Any]) -> Goals:
    """The goals of a stored task (its spec as the bookkeeping holds it)."""
    return parse_goals(spec["objective"] if "objective" in spec else None,
                       spec["constraints"] if "constraints" in spec else None, "stored task")


def stored_constraints(constraints: Sequence[Constraint]) -> list[dict[str, Any]]:
    return [c.to_dict() for c in constraints]
