"""The kinds of search-space parameter (float, int, categorical, fixed, normal) and the
value predicates they share: what a value of each kind is, how one is drawn, and which values
a grid search visits. The format itself is described in ``gridhpo.steering.space``."""
from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard, Union

from gridhpo.errors import ConfigError

Scalar = Union[str, int, float, bool]

_REL_TOL = 1e-9
# every backend handles values as floats, so ints stay where a float is exact (docs/taskfile.md, "Limits")
MAX_INT = 1 << 53


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_number(value: object) -> TypeGuard[int | float]:
    """A number a float can hold: an integer beyond 1e308 (YAML reads any) is refused, not an OverflowError."""
    try:
        return _is_number(value) and math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:
        return False


def storable_number(value: object) -> bool:
    return finite_number(value) and (not isinstance(value, int) or abs(value) <= MAX_INT)


def on_grid(value: float, origin: float, step: float) -> bool:
    """Whether ``value`` is ``origin`` plus a whole number of ``step``. Values are snapped by
    rounding to 12 decimals, so what that gives counts as on the grid however fine the step: with
    step 1e-09, -10.018242586 is 1.0e10 steps from 0, where ``k - round(k)`` is off by 2e-06 from
    the float division alone (found by the space fuzzer)."""
    k = (value - origin) / step
    nearest = origin + round(k) * step
    return bool(abs(k - round(k)) < 1e-6 or abs(value - nearest) <= 1e-12 + 1e-15 * abs(value))


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
        return self.step is None or on_grid(value, self.low, self.step)

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
        return self.step is None or on_grid(value, 0.0, self.step)

    def grid(self, resolution: int) -> Iterable[Any]:
        raise ConfigError(f"search_space.{self.name}: a normal distribution has no bounds to enumerate")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "normal", "mu": self.mu, "sigma": self.sigma}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return self._with_when(out)

