"""Explore: a new config near a member's, inside the search space.

A number is multiplied by one of the factors and snapped back inside its bounds and onto its
step (so ``int`` stays ``int`` and a log range stays positive); a categorical moves to a
neighbouring choice; with ``resample_probability`` a parameter is drawn afresh instead.
Conditional parameters whose condition no longer holds are dropped, and those whose
condition now holds are drawn, so the result is always a valid point of the space.
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from gridhpo.steering.space import Categorical, Fixed, Normal, Numeric, Param, SearchSpace


def mutable_names(space: SearchSpace, mutable: Sequence[str] | None) -> list[str]:
    if mutable is None:
        return [p.name for p in space if not isinstance(p, Fixed)]
    return [name for name in mutable if name in space.by_name]


def explore(point: Mapping[str, Any], space: SearchSpace, mutable: Sequence[str] | None,
            factors: tuple[float, float], resample_probability: float, rng: random.Random) -> dict[str, Any]:
    names = set(mutable_names(space, mutable))
    out: dict[str, Any] = {}
    for p in space:
        if p.when is not None and not p.when.holds(out):
            continue
        if p.name not in point:  # its condition holds now: a first value
            out[p.name] = p.sample(rng)
        elif p.name in names:
            out[p.name] = _move(p, point[p.name], factors, resample_probability, rng)
        else:
            out[p.name] = point[p.name]
    return out


def _move(p: Param, value: Any, factors: tuple[float, float], resample: float, rng: random.Random) -> Any:
    if rng.random() < resample:
        return p.sample(rng)
    if isinstance(p, Categorical):
        i = p.index(value) if p.contains(value) else 0
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(p.choices)]
        return p.choices[rng.choice(neighbours)] if neighbours else value
    factor = rng.choice(factors)
    if isinstance(p, Numeric):
        moved = p.snap(value * factor)
        if moved == value and p.is_int:
            # a small int times 1.2 rounds back to itself: step it instead, or it never moves
            moved = p.snap(value + (1 if factor > 1 else -1) * (p.step or 1))
        return moved
    if isinstance(p, Normal):
        return p.decode(value * factor) if not p.log else p.decode(_log(value * factor))
    return value


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -700.0
