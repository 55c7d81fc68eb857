"""Helpers the backends share: option checks, seeds, duplicate-free fallbacks, liars, encodings.

Every library backend maps each parameter to an internal coordinate and back:

- ``categorical`` -> the index of the choice (so ``True``, ``1``, ``1.0`` and ``"1"`` stay apart);
- ``int``, or ``float`` with ``step``, on a linear scale -> the index ``k`` of ``low + k*step``;
- ``log`` (with or without ``step``/``int``) -> the value on a log scale, snapped to the grid
  afterwards (ints widened by half a unit so both ends are as likely as inner values, the
  same meaning as ``SearchSpace.sample``);
- continuous ``float`` -> the value itself; ``normal`` -> the Gaussian draw before ``exp`` and rounding.

An inactive parameter (its ``when`` does not hold) is dropped from the point; a library that
needs a full vector sees a constant in its place (``impute``), never the user.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.space import Categorical, Fixed, Normal, Numeric, Param, Point, SearchSpace

_TRIES = 64


def check_options(backend: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    for key in options:
        if key not in set(known):
            raise ConfigError(f"optimiser.options: {unknown_name(f'{backend} option', str(key), known)}")


def derive_seed(*parts: object) -> int:
    """A 31-bit seed that depends on every part, stable across processes (unlike ``hash``)."""
    return random.Random(":".join(map(str, parts))).getrandbits(31)


def is_discrete(space: SearchSpace) -> bool:
    return all(isinstance(p, (Categorical, Fixed)) or (isinstance(p, Numeric) and p.n_steps() is not None)
               for p in space)


def draw_unseen(space: SearchSpace, seed: int, number: int, seen: set[str]) -> Point | None:
    """A point of the space's own prior not in ``seen`` (or None when the space is exhausted)."""
    for retry in range(_TRIES):
        point = space.sample(random.Random(f"{seed}:{number}:fallback:{retry}"))
        if space.key(point) not in seen:
            return point
    if is_discrete(space):
        for point in space.iter_grid(resolution=1 << 62):
            if space.key(point) not in seen:
                return point
    return None


def liar(values: list[float], how: str) -> float:
    """The constant told for a pending point (values are minimised)."""
    if not values:
        return 0.0
    if how in ("cl_min", "min"):
        return min(values)
    if how in ("cl_mean", "mean"):
        return sum(values) / len(values)
    return max(values)


def widened(p: Numeric) -> tuple[float, float]:
    """The range of the internal log-scale coordinate of ``p``."""
    if p.is_int:
        return p.low - 0.5, p.high + 0.5
    return p.low, p.high


def is_indexed(p: Numeric) -> bool:
    """True where the coordinate is the grid index (a linear int or stepped range)."""
    return not p.log and p.n_steps() is not None


def encode(p: Param, value: Any) -> Any:
    if isinstance(p, Categorical):
        return p.index(value)
    if isinstance(p, Numeric):
        if is_indexed(p):
            return round((value - p.low) / (p.step or 1))
        return float(value)
    if isinstance(p, Normal):
        if p.log:
            return math.log(value) if value > 0 else p.mu - 3 * p.sigma
        return float(value)
    raise TypeError(f"no coordinate for {p!r}")


def decode(p: Param, x: Any) -> Any:
    if isinstance(p, Categorical):
        return p.choices[min(max(round(float(x)), 0), len(p.choices) - 1)]
    if isinstance(p, Numeric):
        if is_indexed(p):
            n = p.n_steps()
            assert n is not None
            k = min(max(round(float(x)), 0), n - 1)
            return p.snap(p.low + k * (p.step or 1))
        return p.snap(float(x))
    if isinstance(p, Normal):
        return p.decode(float(x))
    raise TypeError(f"no coordinate for {p!r}")


def impute(p: Param) -> float | int:
    """The internal constant standing for an inactive parameter."""
    if isinstance(p, Categorical):
        return 0
    if isinstance(p, Numeric):
        return 0 if is_indexed(p) else widened(p)[0] if p.log else p.low
    if isinstance(p, Normal):
        return p.mu
    raise TypeError(f"no coordinate for {p!r}")


def free_params(space: SearchSpace) -> list[Param]:
    """The parameters a library searches over (fixed values and single choices are constants)."""
    return [p for p in space if not isinstance(p, Fixed) and not (isinstance(p, Categorical) and len(p.choices) == 1)]


def to_vector(space: SearchSpace, free: list[Param], point: Mapping[str, Any]) -> list[float | int]:
    return [encode(p, point[p.name]) if p.name in point else impute(p) for p in free]


def from_vector(space: SearchSpace, free: list[Param], x: Iterable[Any]) -> Point:
    """The point for an internal vector: constants filled in, inactive parameters dropped."""
    coords = dict(zip((p.name for p in free), x, strict=True))
    return build_point(space, lambda p: decode(p, coords[p.name]))


def build_point(space: SearchSpace, value_of: Callable[[Param], Any]) -> Point:
    """The point whose searched parameters ``value_of`` gives, called in space order and only for
    active ones (so a define-by-run library draws a parameter only when its condition holds)."""
    point: Point = {}
    for p in space:
        if p.when is not None and not p.when.holds(point):
            continue
        if isinstance(p, Fixed):
            point[p.name] = p.value
        elif isinstance(p, Categorical) and len(p.choices) == 1:
            point[p.name] = p.choices[0]
        else:
            point[p.name] = value_of(p)
    return point
