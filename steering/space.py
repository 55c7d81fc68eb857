"""The unified search space: one format that every optimiser backend reads.

Types: ``float`` and ``int`` (low, high, optional ``log``, optional ``step``),
``categorical`` (choices of str, number or bool), ``fixed`` (value) and ``normal`` (mu,
sigma, optional ``log``, optional ``step``: unbounded, for the ATLAS normal methods). Any parameter may
carry ``when: {other: value}`` (or a list of values): it is active only where the other
parameter takes that value, and an inactive parameter is absent from a point.

Meaning shared by every backend:
- ``step`` is a grid anchored at ``low``: the values are ``low + k*step`` and the step must
  divide ``high - low``.
- ``log`` samples uniformly in ``ln(x)``; with ``step`` the log-uniform draw is rounded to
  the nearest grid value.
- an ``int`` range includes both ends.
"""
from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard, Union

from gridhpo.errors import ConfigError, unknown_name

Scalar = Union[str, int, float, bool]
Point = dict[str, Any]

TYPES = ("float", "int", "categorical", "fixed", "normal")
_KEYS = {
    "normal": {"type", "mu", "sigma", "log", "step", "when"},
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
    "fixed": {"type", "value", "when"},
}
_REL_TOL = 1e-9

# Limits (docs/taskfile.md, "Limits"): every backend handles values as floats, so ints stay
# where a float is exact, and a grid step finer than this many values is no grid at all.
MAX_INT = 1 << 53
MAX_STEPS = 10 ** 12
MAX_PARAMS = 1_000
MAX_CHOICES = 10_000
_PARAM_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_number(value: object) -> TypeGuard[int | float]:
    """A number a float can hold: an integer beyond 1e308 (YAML reads any) is refused, not an OverflowError."""
    try:
        return _is_number(value) and math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:
        return False


def _storable_number(value: object) -> bool:
    return finite_number(value) and (not isinstance(value, int) or abs(value) <= MAX_INT)


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


def same_value(a: object, b: object) -> bool:
    """Equality that keeps ``True``, ``1`` and ``1.0`` apart, as JSON does."""
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Condition:
    """Active only where parameter ``name`` takes one of ``values``."""

    name: str
    values: tuple[Scalar, ...]

    def holds(self, point: Mapping[str, Any]) -> bool:
        return self.name in point and any(same_value(point[self.name], v) for v in self.values)


@dataclass(frozen=True)
class Param:
    name: str
    when: Condition | None = field(default=None, kw_only=True)

    def sample(self, rng: random.Random) -> Any:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        raise NotImplementedError

    def grid(self, resolution: int) -> Iterable[Any]:
        """The values a grid search visits; continuous ranges are cut into ``resolution``.
        Produced lazily: an int range may hold 2**54 values."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _with_when(self, out: dict[str, Any]) -> dict[str, Any]:
        if self.when is not None:
            values = self.when.values
            out["when"] = {self.when.name: values[0] if len(values) == 1 else list(values)}
        return out


@dataclass(frozen=True)
class Numeric(Param):
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    step: float | None = None

    @property
    def is_int(self) -> bool:
        return False

    def n_steps(self) -> int | None:
        """How many grid values there are, or None for a continuous range."""
        if self.step is None:
            return int(self.high - self.low) + 1 if self.is_int else None
        return round((self.high - self.low) / self.step) + 1

    def snap(self, x: float) -> float | int:
        """The nearest allowed value to ``x`` (on the step grid, inside the bounds)."""
        x = min(max(x, self.low), self.high)
        if self.step is not None:
            k = round((x - self.low) / self.step)
            x = self.low + k * self.step
            x = min(max(x, self.low), self.high)
        if self.is_int:
            return round(x)
        if self.step is not None:
            # 0.1 + 3*0.05 is 0.25000000000000006; users expect the decimal they wrote
            x = round(x, 12)
        return float(x)

    def sample(self, rng: random.Random) -> float | int:
        if self.is_int and not self.log:
            n = self.n_steps()
            assert n is not None
            return int(self.low + rng.randrange(n) * (self.step or 1))
        lo, hi = self.low, self.high
        if self.is_int:
            # widen by half a unit so the end values are as likely as the inner ones
            lo, hi = lo - 0.5, hi + 0.5
        if self.log:
            x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        else:
            x = rng.uniform(lo, hi)
        return self.snap(x)

    def contains(self, value: Any) -> bool:
        if not _is_number(value):
            return False
        if self.is_int and not isinstance(value, int):
            return False
        tol = _REL_TOL * max(1.0, abs(self.high), abs(self.low))
        if value < self.low - tol or value > self.high + tol:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            # snap() rounds to 12 decimals: what it gives is on the grid, however fine the step
            nearest = self.low + round(k) * self.step
            return bool(abs(k - round(k)) < 1e-6 or abs(value - nearest) <= 1e-12 + 1e-15 * abs(value))
        return True

    def grid(self, resolution: int) -> Iterable[Any]:
        n = self.n_steps()
        if n is not None and (self.step is not None or self.is_int) and not (
            self.log and n > resolution
        ):
            return (self.snap(self.low + k * (self.step or 1)) for k in range(n))
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            raw = [math.exp(a + (b - a) * k / (resolution - 1)) for k in range(resolution)]
        else:
            raw = [self.low + (self.high - self.low) * (k / (resolution - 1)) for k in range(resolution)]
        out: list[Any] = []
        for x in raw:
            v = self.snap(x)
            if not any(same_value(v, o) for o in out):
                out.append(v)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "int" if self.is_int else "float", "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return self._with_when(out)


@dataclass(frozen=True)
class Float(Numeric):
    pass


@dataclass(frozen=True)
class Int(Numeric):
    @property
    def is_int(self) -> bool:
        return True


@dataclass(frozen=True)
class Categorical(Param):
    choices: tuple[Scalar, ...] = ()

    def sample(self, rng: random.Random) -> Scalar:
        return self.choices[rng.randrange(len(self.choices))]

    def contains(self, value: Any) -> bool:
        return any(same_value(value, c) for c in self.choices)

    def index(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if same_value(value, c):
                return i
        raise ValueError(f"{value!r} is not a choice of {self.name}")

    def grid(self, resolution: int) -> Iterable[Any]:
        return self.choices

    def to_dict(self) -> dict[str, Any]:
        return self._with_when({"type": "categorical", "choices": list(self.choices)})


@dataclass(frozen=True)
class Fixed(Param):
    value: Scalar = 0

    def sample(self, rng: random.Random) -> Scalar:
        return self.value

    def contains(self, value: Any) -> bool:
        return same_value(value, self.value)

    def grid(self, resolution: int) -> Iterable[Any]:
        return (self.value,)

    def to_dict(self) -> dict[str, Any]:
        return self._with_when({"type": "fixed", "value": self.value})


@dataclass(frozen=True)
class Normal(Param):
    """An unbounded value ``N(mu, sigma)`` (hyperopt's ``normal``); with ``log`` it is
    ``exp(N(mu, sigma))`` (``lognormal``); with ``step`` it is rounded to a multiple of
    ``step`` (``qnormal``, ``qlognormal``: anchored at 0, not at a bound, since there is none)."""

    mu: float = 0.0
    sigma: float = 1.0
    log: bool = False
    step: float | None = None

    def decode(self, y: float) -> float:
        """The value for a draw ``y`` of ``N(mu, sigma)``."""
        # clamped both ways: exp overflows above ~709 and underflows to 0.0 (outside a log
        # space) below ~-745, which a wide sigma reaches (found by the space fuzzer)
        x = math.exp(min(max(y, -700.0), 700.0)) if self.log else y
        if self.step is not None:
            x = round(round(x / self.step) * self.step, 12)
        return float(x)

    def sample(self, rng: random.Random) -> float:
        return self.decode(rng.gauss(self.mu, self.sigma))

    def contains(self, value: Any) -> bool:
        if not finite_number(value) or (self.log and value < 0):
            return False
        if self.log and self.step is None and value <= 0:
            return False
        if self.step is not None:
            k = value / self.step
            return bool(abs(k - round(k)) < 1e-6)
        return True

    def grid(self, resolution: int) -> Iterable[Any]:
        raise ConfigError(f"search_space.{self.name}: a normal distribution has no bounds to enumerate")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "normal", "mu": self.mu, "sigma": self.sigma}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return self._with_when(out)


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


# --------------------------------------------------------------------------- parsing


def parse_space(raw: object, where: str = "search_space") -> SearchSpace:
    """Build a SearchSpace from the task file's mapping; errors name ``where.param.field``."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}: must be a non-empty mapping of parameter name to definition")
    if len(raw) > MAX_PARAMS:
        raise ConfigError(f"{where}: {len(raw)} parameters is over the limit of {MAX_PARAMS}")
    for name in raw:
        # a YAML ``1:`` is an int and ``"1":`` a string: str() would make them one parameter
        if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
            raise ConfigError(f"{where}: parameter name {name!r} is not a string of printable characters "
                              f"(at most 128)")
    params = [_parse_param(name, spec, f"{where}.{name}") for name, spec in raw.items()]
    names = {p.name for p in params}
    for p in params:
        if p.when is not None:
            _check_condition(p, names, {q.name: q for q in params}, f"{where}.{p.name}.when")
    return SearchSpace(params)


def _parse_param(name: str, spec: object, where: str) -> Param:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be a mapping with a 'type' (one of {', '.join(TYPES)})")
    kind = spec.get("type")
    if kind is None:
        raise ConfigError(f"{where}: 'type' is missing (one of {', '.join(TYPES)})")
    if kind not in TYPES:
        raise ConfigError(f"{where}.type: {unknown_name('type', str(kind), TYPES)}")
    extra = set(spec) - _KEYS[kind]
    if extra:
        bad = sorted(extra)[0]
        raise ConfigError(
            f"{where}: {unknown_name(f'key for a {kind} parameter', bad, _KEYS[kind])}"
        )
    when = _parse_when(spec.get("when"), f"{where}.when")
    if kind in ("float", "int"):
        return _parse_numeric(name, kind, spec, when, where)
    if kind == "normal":
        return _parse_normal(name, spec, when, where)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, Sequence) or isinstance(choices, str) or len(choices) == 0:
            raise ConfigError(f"{where}.choices: must be a non-empty list")
        if len(choices) > MAX_CHOICES:
            raise ConfigError(f"{where}.choices: {len(choices)} choices is over the limit of {MAX_CHOICES}")
        for c in choices:
            if not isinstance(c, (str, bool)) and not _storable_number(c):
                raise ConfigError(f"{where}.choices: {c!r} is not a string, finite number (ints within ±2**53) "
                                  f"or boolean")
        seen: list[Scalar] = []
        for c in choices:
            if any(same_value(c, s) for s in seen):
                raise ConfigError(f"{where}.choices: {c!r} is listed twice")
            seen.append(c)
        return Categorical(name, choices=tuple(choices), when=when)
    if "value" not in spec:
        raise ConfigError(f"{where}.value: is missing")
    value = spec["value"]
    if not isinstance(value, (str, bool)) and not _storable_number(value):
        raise ConfigError(f"{where}.value: {value!r} is not a string, finite number (ints within ±2**53) or boolean")
    return Fixed(name, value=value, when=when)


def _parse_numeric(name: str, kind: str, spec: Mapping[str, Any], when: Condition | None, where: str) -> Numeric:
    vals: dict[str, Any] = {}
    for key in ("low", "high"):
        if key not in spec:
            raise ConfigError(f"{where}.{key}: is missing")
        v = spec[key]
        if not finite_number(v):
            raise ConfigError(f"{where}.{key}: {v!r} is not a finite number")
        if kind == "int" and not float(v).is_integer():
            raise ConfigError(f"{where}.{key}: {v!r} is not an integer")
        if kind == "int" and abs(v) > MAX_INT:
            raise ConfigError(f"{where}.{key}: {v!r} is beyond the limit of ±{MAX_INT} (2**53)")
        vals[key] = int(v) if kind == "int" else float(v)
    low, high = vals["low"], vals["high"]
    if low >= high:
        raise ConfigError(f"{where}: low ({low}) must be less than high ({high})")
    if not math.isfinite(float(high) - float(low)):
        # high - low overflowing makes every draw and grid value inf or NaN
        raise ConfigError(f"{where}: the range {low}..{high} is too wide (high - low overflows a float)")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: {log!r} is not true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: log scale needs low > 0 (got low={low})")
    step = spec.get("step")
    if step is not None:
        if not finite_number(step) or step <= 0:
            raise ConfigError(f"{where}.step: {step!r} is not a positive number")
        if kind == "int":
            if not float(step).is_integer():
                raise ConfigError(f"{where}.step: {step!r} is not an integer")
            step = int(step)
            if (high - low) % step:
                raise ConfigError(f"{where}.step: {step} does not divide the range {low}..{high}")
        else:
            step = float(step)
            k = (high - low) / step
            if not math.isfinite(k):
                raise ConfigError(f"{where}.step: {step} is too small for the range {low}..{high}")
            if k > MAX_STEPS:
                raise ConfigError(f"{where}.step: {step} cuts the range {low}..{high} into more than "
                                  f"{MAX_STEPS} values (the limit)")
            if abs(k - round(k)) > 1e-6:
                raise ConfigError(f"{where}.step: {step} does not divide the range {low}..{high}")
    cls = Int if kind == "int" else Float
    return cls(name, low=low, high=high, log=log, step=step, when=when)


def _parse_normal(name: str, spec: Mapping[str, Any], when: Condition | None, where: str) -> Normal:
    vals: dict[str, float] = {}
    for key in ("mu", "sigma"):
        v: Any = spec.get(key)
        if not finite_number(v):
            raise ConfigError(f"{where}.{key}: {v!r} is not a finite number")
        vals[key] = float(v)
    if vals["sigma"] <= 0:
        raise ConfigError(f"{where}.sigma: {vals['sigma']} must be positive")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: {log!r} is not true or false")
    step = spec.get("step")
    if step is not None and (not finite_number(step) or step <= 0):
        raise ConfigError(f"{where}.step: {step!r} is not a positive number")
    return Normal(name, mu=vals["mu"], sigma=vals["sigma"], log=log,
                  step=None if step is None else float(step), when=when)


def _parse_when(raw: object, where: str) -> Condition | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ConfigError(f"{where}: must be a mapping with one entry, e.g. {{optimizer: sgd}}")
    (name, values), = raw.items()
    vals = tuple(values) if isinstance(values, list) else (values,)
    if not vals:
        raise ConfigError(f"{where}.{name}: needs at least one value")
    return Condition(str(name), vals)


def _check_condition(p: Param, names: set[str], params: Mapping[str, Param], where: str) -> None:
    assert p.when is not None
    cond = p.when
    if cond.name not in names:
        raise ConfigError(f"{where}: {unknown_name('parameter', cond.name, names - {p.name})}")
    if cond.name == p.name:
        raise ConfigError(f"{where}: a parameter cannot depend on itself")
    parent = params[cond.name]
    for v in cond.values:
        if not isinstance(parent, (Categorical, Fixed)):
            raise ConfigError(f"{where}: {cond.name!r} must be categorical or fixed to be a condition")
        if not parent.contains(v):
            allowed = parent.choices if isinstance(parent, Categorical) else (parent.value,)
            raise ConfigError(
                f"{where}.{cond.name}: {v!r} is not one of {list(allowed)}"
            )
