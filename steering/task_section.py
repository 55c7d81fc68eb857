"""Section: the strict reader of one mapping of a task file (unknown keys refused with the
closest valid name, each value checked for its type and limits), and parse_duration."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.space import finite_number

# matched against the stripped text: one ``\s*`` only, so matching is linear (``\s*`` on both
# sides of the optional unit made "1" + 50,000 spaces + "x" take seconds, holding the GIL)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
MAX_DURATION_CHARS = 64
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

# Limits on free-form options (docs/taskfile.md, "Limits")
MAX_OPTION_DEPTH = 8  # optimiser.options, early_stopping.options: mappings and lists inside one another
MAX_OPTION_VALUES = 10_000  # ... and values in all


def parse_duration(value: object, where: str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1.5h"``; finite (``.inf`` is no timeout:
    leave the key out)."""
    if finite_number(value) and value >= 0:
        return float(value)
    if isinstance(value, str):
        if len(value) > MAX_DURATION_CHARS:
            raise ConfigError(f"{where}: {value[:20]!r}... ({len(value)} characters) is not a duration: "
                              f"at most {MAX_DURATION_CHARS} characters (e.g. 30, '30s', '5m', '2h')")
        m = _DURATION.fullmatch(value.strip())
        if m and math.isfinite(seconds := float(m.group(1)) * _UNITS[m.group(2)]):
            return seconds
    raise ConfigError(f"{where}: {value!r} is not a duration (e.g. 30, '30s', '5m', '2h')")


class Section:
    """Reads one mapping of the file, refusing unknown keys and wrong types."""

    def __init__(self, raw: object, where: str, source: str, known: set[str]) -> None:
        self.where = where
        self.source = source
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: {where or 'the task file'}: must be a mapping")
        extra = set(raw) - known
        if extra:
            bad = str(sorted(map(str, extra))[0])
            self.fail(where, str(unknown_name("key", bad, known)))
        self.raw: Mapping[str, Any] = raw

    def section(self, key: str, known: set[str]) -> Section:
        """The mapping under ``key``, read with the same strictness."""
        return Section(self.raw.get(key), self.at(key), self.source, known)

    def fail(self, where: str, msg: str) -> None:
        raise ConfigError(f"{self.source}: {where}: {msg}" if where else f"{self.source}: {msg}")

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def get(self, key: str, default: Any) -> Any:
        """The value, or ``default`` when absent or empty (YAML's ``key:`` with nothing after it)."""
        v = self.raw.get(key)
        return default if v is None else v

    def text(self, key: str, default: str | None = None, choices: tuple[str, ...] | None = None) -> Any:
        v = self.get(key, default)
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            self.fail(self.at(key), f"{v!r} is not a non-empty string")
        if choices is not None and v not in choices:
            self.fail(self.at(key), f"{v!r} is not one of {', '.join(choices)}")
        return v

    def integer(self, key: str, default: int | None, minimum: int = 0, maximum: int | None = None) -> Any:
        v = self.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            self.fail(self.at(key), f"{v!r} is not an integer >= {minimum}")
        if maximum is not None and v > maximum:
            self.fail(self.at(key), f"{v!r} is over the limit of {maximum}")
        return v

    def number(self, key: str, default: float | None, minimum: float = 0.0) -> Any:
        v = self.get(key, default)
        if v is None:
            return None
        if not finite_number(v) or v < minimum:
            self.fail(self.at(key), f"{v!r} is not a number >= {minimum}")
        return float(v)

    def flag(self, key: str, default: bool) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            self.fail(self.at(key), f"{v!r} is not true or false")
        return bool(v)

    def duration(self, key: str, default: float | None) -> Any:
        v = self.get(key, default)
        if v is None:
            return None
        try:
            return parse_duration(v, self.at(key))
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None

    def mapping(self, key: str) -> dict[str, Any]:
        v = self.raw.get(key) or {}
        if not isinstance(v, Mapping):
            self.fail(self.at(key), "must be a mapping")
        return dict(v)

    def options(self, key: str) -> dict[str, Any]:
        """A free-form mapping of plain data (string keys, finite numbers), within the limits."""
        v = self.mapping(key)
        budget = [MAX_OPTION_VALUES]

        def check(x: Any, where: str, depth: int) -> None:
            budget[0] -= 1
            if budget[0] < 0:
                self.fail(self.at(key), f"holds more than {MAX_OPTION_VALUES} values")
            if depth > MAX_OPTION_DEPTH:
                self.fail(where, f"nested more than {MAX_OPTION_DEPTH} levels")
            if isinstance(x, Mapping):
                for k, item in x.items():
                    if not isinstance(k, str):
                        self.fail(where, f"key {k!r} is not a string")
                    check(item, f"{where}.{k}", depth + 1)
            elif isinstance(x, (list, tuple)):
                for i, item in enumerate(x):
                    check(item, f"{where}[{i}]", depth + 1)
            elif isinstance(x, (int, float)) and not isinstance(x, bool) and not finite_number(x):
                self.fail(where, f"{x!r} is not a finite number")
            elif not isinstance(x, (str, int, float, bool)) and x is not None:
                self.fail(where, f"{x!r} is not a string, number, boolean, list or mapping")

        check(v, self.at(key), 0)
        return v
