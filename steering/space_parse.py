"""parse_space: the task file's ``search_space`` mapping checked and turned into a SearchSpace,
with errors that name ``where.param.field`` and the limits of docs/taskfile.md."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.searchspace import SearchSpace
from gridhpo.steering.space_params import (
    MAX_INT,
    Categorical,
    Condition,
    Fixed,
    Float,
    Int,
    Normal,
    Numeric,
    Param,
    Scalar,
    finite_number,
    same_value,
    storable_number,
)

TYPES = ("float", "int", "categorical", "fixed", "normal")
_KEYS = {
    "normal": {"type", "mu", "sigma", "log", "step", "when"},
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
    "fixed": {"type", "value", "when"},
}

# Limits (docs/taskfile.md, "Limits"): a grid step finer than this many values is no grid at all.
MAX_STEPS = 10 ** 12
MAX_PARAMS = 1_000
MAX_CHOICES = 10_000
_PARAM_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


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
        return _parse_categorical(name, spec, when, where)
    return _parse_fixed(name, spec, when, where)


def _parse_categorical(name: str, spec: Mapping[str, Any], when: Condition | None, where: str) -> Categorical:
    choices = spec.get("choices")
    if not isinstance(choices, Sequence) or isinstance(choices, str) or len(choices) == 0:
        raise ConfigError(f"{where}.choices: must be a non-empty list")
    if len(choices) > MAX_CHOICES:
        raise ConfigError(f"{where}.choices: {len(choices)} choices is over the limit of {MAX_CHOICES}")
    for c in choices:
        if not isinstance(c, (str, bool)) and not storable_number(c):
            raise ConfigError(f"{where}.choices: {c!r} is not a string, finite number (ints within ±2**53) "
                              f"or boolean")
    seen: list[Scalar] = []
    for c in choices:
        if any(same_value(c, s) for s in seen):
            raise ConfigError(f"{where}.choices: {c!r} is listed twice")
        seen.append(c)
    return Categorical(name, choices=tuple(choices), when=when)


def _parse_fixed(name: str, spec: Mapping[str, Any], when: Condition | None, where: str) -> Fixed:
    if "value" not in spec:
        raise ConfigError(f"{where}.value: is missing")
    value = spec["value"]
    if not isinstance(value, (str, bool)) and not storable_number(value):
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
