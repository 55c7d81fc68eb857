"""The task file (YAML or JSON): parsing and strict validation into a TaskSpec.

Every error is one line naming the file, the field and what is allowed. Unknown keys are an
error, with the closest valid name, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.protocol.evaluation import (
    CheckpointSpec,
    EvaluationSpec,
    Resources,
    default_of,
)
from gridhpo.steering.loading import parse_text, read_text
from gridhpo.steering.objectives import Constraint, Goals, Objective, parse_goals
from gridhpo.steering.space import SearchSpace, finite_number, parse_space

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

# Limits on what a task may ask for (docs/taskfile.md, "Limits"): beyond them one task
# would exhaust the steering's memory or time, which every other task shares.
MAX_POINTS = 1_000_000
MAX_PARALLEL = 10_000  # budget.parallel, budget.min_queued
MAX_ATTEMPTS = 100
MAX_SEED = (1 << 32) - 1  # numpy's seeds (skopt, nevergrad) stop there
MAX_OPTION_DEPTH = 8  # optimiser.options, early_stopping.options: mappings and lists inside one another
MAX_OPTION_VALUES = 10_000  # ... and values in all


def parse_duration(value: object, where: str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1.5h"``; finite (``.inf`` is no timeout:
    leave the key out)."""
    if finite_number(value) and value >= 0:
        return float(value)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value)
        if m and math.isfinite(seconds := float(m.group(1)) * _UNITS[m.group(2)]):
            return seconds
    raise ConfigError(f"{where}: {value!r} is not a duration (e.g. 30, '30s', '5m', '2h')")


@dataclass(frozen=True)
class Optimiser:
    backend: str = "auto"
    algorithm: str | None = None
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # the user's own steering (backend "steering", steering/optimisers/external.py)
    command: str | None = None
    image: str | None = None
    timeout: float | None = None
    # why backend auto chose this backend (steering/optimisers/auto.py); None when the user named it
    auto: str | None = None


@dataclass(frozen=True)
class Budget:
    max_points: int = 100
    parallel: int = 1
    max_failures: int | None = None
    max_attempts: int = 3
    min_queued: int = 0


@dataclass(frozen=True)
class EarlyStopping:
    scheduler: str = "none"
    resource: str = "epoch"
    min_resource: int = 1
    max_resource: int = 81
    reduction_factor: int = 3
    grace: int = 0
    revive: bool = False
    options: dict[str, Any] = field(default_factory=dict)


# The evaluation section is the protocol's type: the steering stores it and sends it with
# every point as it is, and its defaults are defined there once.
Evaluation = EvaluationSpec
Checkpoint = CheckpointSpec


@dataclass(frozen=True)
class TaskSpec:
    name: str
    search_space: SearchSpace
    objective: Objective
    optimiser: Optimiser
    budget: Budget
    evaluation: Evaluation
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    # every objective (the first is ``objective``) and the constraints: steering/objectives.py
    objectives: tuple[Objective, ...] = ()
    constraints: tuple[Constraint, ...] = ()

    def __post_init__(self) -> None:
        if not self.objectives:
            object.__setattr__(self, "objectives", (self.objective,))

    @property
    def goals(self) -> Goals:
        return Goals(self.objectives, self.constraints)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form stored in the bookkeeping; ``from_dict`` reads it back."""
        return {
            "name": self.name,
            "search_space": self.search_space.to_dict(),
            "objective": self.goals.to_stored(),
            **({"constraints": [c.to_dict() for c in self.constraints]} if self.constraints else {}),
            "optimiser": asdict(self.optimiser),
            "budget": asdict(self.budget),
            "evaluation": self.evaluation.to_wire(),
            "early_stopping": asdict(self.early_stopping),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<stored task>") -> TaskSpec:
        return _parse(raw, source, base_dir=None)

    def better(self, a: float, b: float) -> bool:
        """True where value ``a`` beats ``b`` for this task's objective."""
        return a < b if self.objective.mode == "min" else a > b


def load_task(path: str | Path) -> TaskSpec:
    """Read and validate a task file; relative paths in it are taken from its folder."""
    p = Path(path)
    raw = parse_text(read_text(p), p)
    return _parse(raw, str(p), base_dir=p.resolve().parent)


def check_name(name: str, where: str) -> None:
    """A task name: one printable word, never all digits (``gridhpo cancel 1`` means task id 1)."""
    if not _NAME.fullmatch(name):  # fullmatch: re's ``$`` would let "abc\n" through
        raise ConfigError(f"{where}: {name!r} must be letters, digits, '.', '_' or '-' (at most 128)")
    if name.isdigit():
        raise ConfigError(f"{where}: {name!r} is all digits, which would read as a task id "
                          f"(gridhpo cancel {name}); add a letter")


def parse_task(raw: object, source: str = "<task>", base_dir: Path | None = None) -> TaskSpec:
    return _parse(raw, source, base_dir)


# --------------------------------------------------------------------------- internals


class _Section:
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


_TOP = {"name", "search_space", "objective", "constraints", "optimiser", "budget", "evaluation", "early_stopping"}


def _parse(raw: object, source: str, base_dir: Path | None) -> TaskSpec:
    top = _Section(raw, "", source, _TOP)
    if not top.has("name"):
        top.fail("name", "is missing (a short identifier such as mlp-digits)")
    name = top.text("name")
    try:
        check_name(name, "name")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if top.raw.get("search_space") is None:
        top.fail("search_space", "is missing")
    try:
        space = _parse_search_space(top.raw["search_space"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None

    goals = parse_goals(top.raw.get("objective"), top.raw.get("constraints"), source)

    opt = _Section(top.raw.get("optimiser"), "optimiser", source,
                   {"backend", "algorithm", "seed", "options", "command", "image", "timeout", "auto"})
    optimiser = Optimiser(
        backend=opt.text("backend", "auto"),
        algorithm=opt.text("algorithm"),
        seed=opt.integer("seed", None, 0, MAX_SEED),
        options=opt.options("options"),
        command=opt.text("command"),
        image=opt.text("image"),
        timeout=opt.duration("timeout", None),
        auto=opt.text("auto"),
    )

    b = _Section(top.raw.get("budget"), "budget", source,
                 {"max_points", "parallel", "max_failures", "max_attempts", "min_queued"})
    budget = Budget(
        max_points=b.integer("max_points", 100, 1, MAX_POINTS),
        parallel=b.integer("parallel", 1, 1, MAX_PARALLEL),
        max_failures=b.integer("max_failures", None, 0, MAX_POINTS),
        max_attempts=b.integer("max_attempts", 3, 1, MAX_ATTEMPTS),
        min_queued=b.integer("min_queued", 0, 0, MAX_PARALLEL),
    )

    e = _Section(top.raw.get("evaluation"), "evaluation", source,
                 {"command", "image", "python", "source_dir", "env", "timeout", "grace",
                  "heartbeat", "lost_after", "checkpoint", "resources"})
    command, image, python = e.text("command"), e.text("image"), e.text("python")
    if python is not None and (command is not None or image is not None):
        e.fail("evaluation", "give either 'python' (an in-process module:function) or 'command'/'image', not both")
    if python is None and command is None and image is None:
        e.fail("evaluation",
               "needs 'command' (a shell command), 'image' (a container image) or 'python' (module:function)")
    if python is not None and not re.match(r"^[\w.]+:[\w]+$", python):
        e.fail("evaluation.python", f"{python!r} is not of the form package.module:function")
    src = e.text("source_dir")
    if src is None and base_dir is not None:
        src = str(base_dir)
    elif src is not None and base_dir is not None and not Path(src).is_absolute():
        src = str((base_dir / src).resolve())
    env = e.mapping("env")
    for k, v in env.items():
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            e.fail(f"evaluation.env.{k}", f"{v!r} is not a string or number")
    c = _Section(e.raw.get("checkpoint"), "evaluation.checkpoint", source,
                 {"interval", "keep", "max_size", "store", "signing_key"})
    r = _Section(e.raw.get("resources"), "evaluation.resources", source, {"cpus", "gpus", "memory"})
    evaluation = EvaluationSpec(
        command=command,
        image=image,
        python=python,
        source_dir=src,
        env={k: str(v) for k, v in env.items()},
        timeout=e.duration("timeout", default_of(EvaluationSpec, "timeout")),
        grace=e.duration("grace", default_of(EvaluationSpec, "grace")),
        heartbeat=e.duration("heartbeat", default_of(EvaluationSpec, "heartbeat")),
        lost_after=e.duration("lost_after", default_of(EvaluationSpec, "lost_after")),
        checkpoint=CheckpointSpec(
            interval=c.duration("interval", default_of(CheckpointSpec, "interval")),
            keep=c.integer("keep", default_of(CheckpointSpec, "keep"), 1),
            max_size=c.integer("max_size", default_of(CheckpointSpec, "max_size"), 1),
            store=c.text("store"),
            signing_key=c.text("signing_key"),
        ),
        resources=Resources(
            cpus=r.number("cpus", default_of(Resources, "cpus")),
            gpus=r.integer("gpus", default_of(Resources, "gpus")),
            memory=r.text("memory"),
        ),
    )
    if evaluation.heartbeat <= 0:
        e.fail("evaluation.heartbeat", "must be more than 0 seconds")
    if evaluation.timeout is not None and evaluation.timeout <= 0:
        e.fail("evaluation.timeout", "must be more than 0 seconds (leave it out for no limit)")
    if evaluation.lost_after <= evaluation.heartbeat:
        e.fail("evaluation.lost_after",
               f"{evaluation.lost_after:g}s must be longer than heartbeat ({evaluation.heartbeat:g}s)")

    s = _Section(top.raw.get("early_stopping"), "early_stopping", source,
                 {"scheduler", "resource", "min_resource", "max_resource", "reduction_factor", "grace",
                  "revive", "options"})
    early = EarlyStopping(
        scheduler=s.text("scheduler", "none"),
        resource=s.text("resource", "epoch"),
        min_resource=s.integer("min_resource", 1, 1),
        max_resource=s.integer("max_resource", 81, 1),
        reduction_factor=s.integer("reduction_factor", 3, 2),
        grace=s.integer("grace", 0, 0),
        revive=s.flag("revive", False),
        options=s.options("options"),
    )
    if early.max_resource < early.min_resource:
        s.fail("early_stopping.max_resource", f"{early.max_resource} is less than min_resource ({early.min_resource})")

    spec = TaskSpec(name, space, goals.objectives[0], _resolve_auto(optimiser, space, budget, source, goals),
                    budget, evaluation, early, goals.objectives, goals.constraints)
    _check_plugins(spec, source)
    return spec


def _parse_search_space(raw: object) -> SearchSpace:
    if isinstance(raw, Mapping) and any(isinstance(v, Mapping) and "method" in v for v in raw.values()):
        from gridhpo.steering.atlas import parse_atlas_space

        atlas: SearchSpace = parse_atlas_space(raw)
        return atlas
    return parse_space(raw)


def _resolve_auto(optimiser: Optimiser, space: SearchSpace, budget: Budget, source: str,
                  goals: Goals) -> Optimiser:
    """Backend auto becomes the backend it chooses, recorded with its reason (stored with the task)."""
    from gridhpo.steering.optimisers.auto import resolve

    try:
        return resolve(optimiser, space, budget, goals)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check_plugins(spec: TaskSpec, source: str) -> None:
    """Refuse at submit time what a backend cannot run, never at the first ask."""
    from gridhpo.steering.optimisers import check_spec
    from gridhpo.steering.schedulers import check_scheduler

    try:
        check_spec(spec)
        check_scheduler(spec)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
