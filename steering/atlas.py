"""The ATLAS ``hpogrid`` search-space format, read into the unified space.

``{"lr": {"method": "loguniform", "dimension": {"low": 1e-4, "high": 0.1, "base": 10}}}``.
Each method keeps its documented (hyperopt ``hp.*``) meaning:

| method | dimension | meaning | unified |
|---|---|---|---|
| categorical | categories (grid_search ignored) | one of the categories | categorical |
| uniform | low, high | uniform real in [low, high] | float |
| uniformint | low, high | uniform integer, both ends included (hp.uniformint) | int |
| quniform | low, high, q | round(uniform(low, high) / q) * q | float, step q, from the multiples of q |
| loguniform | low, high, base | log of the value uniform; low, high are values (base changes nothing) | float, log |
| qloguniform | low, high, q, base | round(loguniform(low, high) / q) * q | float, log, step q |
| normal | mu, sigma | normal(mu, sigma) | normal |
| qnormal | mu, sigma, q | round(normal(mu, sigma) / q) * q | normal, step q |
| lognormal | mu, sigma, base | base ** normal(mu, sigma) | normal, log (mu, sigma times ln base) |
| qlognormal | mu, sigma, q, base | round(base ** normal(mu, sigma) / q) * q | normal, log, step q |
| fixed | the value (or {value: v}) | that value | fixed |

Differences from hyperopt's rounding, stated rather than hidden: a quantised uniform range
starts and ends at the multiples of ``q`` nearest to ``low`` and ``high`` (every multiple
equally likely, where hyperopt halves the two ends), and ``qloguniform`` never yields 0
(its smallest value is ``q``). The ``normal`` family is unbounded: backends that need bounds
(skopt, grid) refuse it at submit time.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.space import SearchSpace, finite_number, parse_space

METHODS: dict[str, tuple[str, ...]] = {
    "categorical": ("categories", "grid_search"),
    "uniform": ("low", "high"),
    "uniformint": ("low", "high"),
    "quniform": ("low", "high", "q"),
    "loguniform": ("low", "high", "base"),
    "qloguniform": ("low", "high", "q", "base"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma", "base"),
    "qlognormal": ("mu", "sigma", "q", "base"),
    "fixed": ("value",),
}
_OPTIONAL = {"grid_search", "base"}


def parse_atlas_space(raw: Mapping[str, Any], where: str = "search_space") -> SearchSpace:
    """The unified SearchSpace for an hpogrid search space; errors name ``where.param.field``."""
    unified: dict[str, Any] = {}
    for name, spec in raw.items():
        unified[str(name)] = _param(spec, f"{where}.{name}")
    return parse_space(unified, where)


def _num(dim: Mapping[str, Any], key: str, where: str) -> float:
    v = dim.get(key)
    if not finite_number(v):
        raise ConfigError(f"{where}.dimension.{key}: {v!r} is not a finite number")
    return float(v)


def _param(spec: object, where: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or "method" not in spec:
        raise ConfigError(f"{where}: must be a mapping with 'method' ({', '.join(METHODS)}) and 'dimension'")
    extra = set(spec) - {"method", "dimension"}
    if extra:
        raise ConfigError(f"{where}: {unknown_name('key', sorted(map(str, extra))[0], ('method', 'dimension'))}")
    method = spec["method"]
    if method not in METHODS:
        raise ConfigError(f"{where}.method: {unknown_name('method', str(method), METHODS)}")
    if method == "fixed":
        dim = spec.get("dimension")
        value = dim["value"] if isinstance(dim, Mapping) and set(dim) == {"value"} else dim
        return {"type": "fixed", "value": value}
    dim = _dimension(method, spec.get("dimension"), where)
    if method == "categorical":
        return {"type": "categorical", "choices": dim["categories"]}
    base = _num(dim, "base", where) if "base" in dim else math.e
    if base <= 1:
        raise ConfigError(f"{where}.dimension.base: {base} must be greater than 1")
    q = _num(dim, "q", where) if "q" in dim else None
    if q is not None and q <= 0:
        raise ConfigError(f"{where}.dimension.q: {q} must be positive")
    if method in ("normal", "qnormal", "lognormal", "qlognormal"):
        return _normal(method, dim, base, q, where)
    return _bounded(method, dim, q, where)


def _dimension(method: str, dim: object, where: str) -> Mapping[str, Any]:
    """The method's dimension: a mapping of its keys, each required one present."""
    if not isinstance(dim, Mapping):
        raise ConfigError(f"{where}.dimension: must be a mapping of {', '.join(METHODS[method])}")
    for key in dim:
        if key not in METHODS[method]:
            raise ConfigError(f"{where}.dimension: {unknown_name(f'key for {method}', str(key), METHODS[method])}")
    for key in METHODS[method]:
        if key not in _OPTIONAL and key not in dim:
            raise ConfigError(f"{where}.dimension.{key}: is missing for method {method}")
    return dim


def _normal(method: str, dim: Mapping[str, Any], base: float, q: float | None, where: str) -> dict[str, Any]:
    """normal, qnormal, lognormal, qlognormal: the space's unbounded normal type."""
    mu, sigma = _num(dim, "mu", where), _num(dim, "sigma", where)
    out: dict[str, Any] = {"type": "normal", "mu": mu, "sigma": sigma}
    if method in ("lognormal", "qlognormal"):
        # base ** N(mu, sigma) is exp(N(mu ln base, sigma ln base))
        out.update(log=True, mu=mu * math.log(base), sigma=sigma * math.log(base))
    if q is not None:
        out["step"] = q
    return out


def _bounded(method: str, dim: Mapping[str, Any], q: float | None, where: str) -> dict[str, Any]:
    """uniform, uniformint, loguniform, quniform, qloguniform: a range of low to high."""
    low, high = _num(dim, "low", where), _num(dim, "high", where)
    if low >= high:
        raise ConfigError(f"{where}.dimension: low ({low:g}) must be less than high ({high:g})")
    if method == "uniform":
        return {"type": "float", "low": low, "high": high}
    if method == "uniformint":
        if not (low.is_integer() and high.is_integer()):
            raise ConfigError(f"{where}.dimension: uniformint needs integer low and high (got {low:g}, {high:g})")
        return {"type": "int", "low": int(low), "high": int(high)}
    if method in ("loguniform", "qloguniform") and low <= 0:
        raise ConfigError(f"{where}.dimension.low: {low:g} must be positive for {method}")
    if method == "loguniform":
        return {"type": "float", "low": low, "high": high, "log": True}
    assert q is not None
    lo, hi = round(low / q), round(high / q)
    if method == "qloguniform":
        lo = max(lo, 1)
    if lo >= hi:
        return {"type": "fixed", "value": round(lo * q, 12)}
    return {"type": "float", "low": round(lo * q, 12), "high": round(hi * q, 12), "step": q,
            **({"log": True} if method == "qloguniform" else {})}
