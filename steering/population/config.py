"""The settings of a population, read from ``early_stopping: {scheduler: pbt, ...}``."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gridhpo.errors import ConfigError

_KEYS = ("population", "perturbation_interval", "quantile_fraction", "resample_probability",
         "factors", "mutable", "seed")


@dataclass(frozen=True)
class PBTConfig:
    population: int = 8
    # in the task's resource unit (the steps the evaluation reports), never wall time: a
    # member may wait hours in a site's queue between two segments
    perturbation_interval: float = 4.0
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    factors: tuple[float, float] = (0.8, 1.2)
    mutable: tuple[str, ...] | None = None  # None: every parameter that is not fixed
    seed: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "early_stopping") -> PBTConfig:
        unknown = sorted(set(options) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown PBT setting; allowed: {', '.join(_KEYS)}")
        cfg = cls(
            population=_int(options, "population", cls.population, 2, 10_000, where),
            perturbation_interval=_number(options, "perturbation_interval", cls.perturbation_interval, where),
            quantile_fraction=_fraction(options, "quantile_fraction", cls.quantile_fraction, where, most=0.5),
            resample_probability=_fraction(options, "resample_probability", cls.resample_probability, where),
            factors=_factors(options.get("factors", cls.factors), where),
            mutable=_names(options.get("mutable"), where),
            seed=_int(options, "seed", cls.seed, 0, 2**31 - 1, where),
        )
        return cfg


def _int(options: Mapping[str, Any], key: str, default: int, low: int, high: int, where: str) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{key}: must be an integer from {low} to {high}, got {value!r}")
    return value


def _number(options: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}.{key}: must be a positive number of resource steps, got {value!r}")
    return float(value)


def _fraction(options: Mapping[str, Any], key: str, default: float, where: str, most: float = 1.0) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= most:
        raise ConfigError(f"{where}.{key}: must be a number from 0 to {most}, got {value!r}")
    return float(value)


def _factors(value: Any, where: str) -> tuple[float, float]:
    ok = (isinstance(value, list | tuple) and len(value) == 2
          and all(isinstance(f, int | float) and not isinstance(f, bool) and math.isfinite(f) and f > 0
                  for f in value))
    if not ok:
        raise ConfigError(f"{where}.factors: must be two positive numbers such as [0.8, 1.2], got {value!r}")
    return (float(value[0]), float(value[1]))


def _names(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.mutable: must be a non-empty list of parameter names, got {value!r}")
    return tuple(value)
