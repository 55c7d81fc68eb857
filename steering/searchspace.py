"""SearchSpace: the ordered set of parameters a task searches, with what every backend asks
of it (sampling, the active part of a point, validation, duplicate keys, the grid)."""
from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gridhpo.errors import ConfigError
from gridhpo.steering.space_params import Param

Point = dict[str, Any]


def unstorable(params: Mapping[str, Any]) -> str | None:
    """Why the bookkeeping cannot store a point's parameters (PostgreSQL's JSON refuses NaN
    and infinities; integers beyond 64 bits are refused by its readers), or None."""
    for name, v in params.items():
        if isinstance(v, float) and not math.isfinite(v):
            return f"parameter {name!r} is {v!r}"
        if isinstance(v, int) and not isinstance(v, bool) and not -(1 << 63) <= v < (1 << 63):
            return f"parameter {name!r} is an integer beyond 64 bits"
        if not isinstance(v, (str, int, float, bool)):
            return f"parameter {name!r} is a {type(v).__name__}, not a string, number or boolean"
    return None



class SearchSpace:
    """An ordered set of parameters; parents of conditions come before their children."""

    def __init__(self, params: Sequence[Param]) -> None:
        self.params: list[Param] = _dependency_order(list(params))
        self.by_name: dict[str, Param] = {p.name: p for p in self.params}

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    @property
    def is_conditional(self) -> bool:
        return any(p.when is not None for p in self.params)

    def sample(self, rng: random.Random) -> Point:
        point: Point = {}
        for p in self.params:
            if p.when is None or p.when.holds(point):
                point[p.name] = p.sample(rng)
        return point

    def active(self, point: Mapping[str, Any]) -> Point:
        """Drop the parameters whose condition does not hold, in space order."""
        out: Point = {}
        for p in self.params:
            if p.name in point and (p.when is None or p.when.holds(out)):
                out[p.name] = point[p.name]
        return out

    def validate_point(self, point: Mapping[str, Any]) -> None:
        """Raise ConfigError unless ``point`` has exactly the active parameters, each allowed."""
        expected: Point = {}
        for p in self.params:
            if p.when is not None and not p.when.holds(expected):
                if p.name in point:
                    raise ConfigError(f"parameter {p.name!r} is inactive here but was given")
                continue
            if p.name not in point:
                raise ConfigError(f"parameter {p.name!r} is missing")
            if not p.contains(point[p.name]):
                raise ConfigError(f"parameter {p.name!r}: {point[p.name]!r} is outside {p.to_dict()}")
            expected[p.name] = point[p.name]
        extra = set(point) - set(expected)
        if extra:
            raise ConfigError(f"unknown parameters {sorted(extra)}")

    def key(self, point: Mapping[str, Any]) -> str:
        """A canonical string for a point, for duplicate detection."""
        return repr([(n, type(v).__name__, v) for n, v in sorted(self.active(point).items())])

    def grid_size(self, resolution: int) -> int:
        """The number of distinct points of the discretised space (conditions included)."""
        return sum(1 for _ in self.iter_grid(resolution))

    def iter_grid(self, resolution: int) -> Iterator[Point]:
        """Every point of the discretised space, in a stable order (last parameter fastest)."""

        def walk(i: int, point: Point) -> Iterator[Point]:
            if i == len(self.params):
                yield dict(point)
                return
            p = self.params[i]
            if p.when is not None and not p.when.holds(point):
                yield from walk(i + 1, point)
                return
            for v in p.grid(resolution):
                point[p.name] = v
                yield from walk(i + 1, point)
            del point[p.name]

        return walk(0, {})

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.params}


def _dependency_order(params: list[Param]) -> list[Param]:
    by_name = {p.name: p for p in params}
    ordered: list[Param] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(p: Param) -> None:
        if p.name in seen:
            return
        if p.name in visiting:
            raise ConfigError(f"search_space.{p.name}.when: conditions form a cycle")
        visiting.add(p.name)
        if p.when is not None:
            visit(by_name[p.when.name])
        visiting.discard(p.name)
        seen.add(p.name)
        ordered.append(p)

    for p in params:
        visit(p)
    return ordered

