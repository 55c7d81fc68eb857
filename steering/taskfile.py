"""The task file (YAML or JSON): parsing and strict validation into a TaskSpec.

Each section of the file has its own small parser below, reading it through a strict
``Section`` (steering/task_section.py). Every error is one line naming the file, the field and
what is allowed. Unknown keys are an error, with the closest valid name, so a typo never
silently falls back to a default.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gridhpo.errors import ConfigError
from gridhpo.protocol.evaluation import (
    MAX_MEMORY_CHARS,
    SAVE_LIST_MAX_SIZE,
    CheckpointSpec,
    EvaluationSpec,
    Resources,
    default_of,
    memory_bytes,
)
from gridhpo.steering.contract import contract_fields
from gridhpo.steering.loading import parse_text, read_text
from gridhpo.steering.objectives import Constraint, Goals, Objective, parse_goals
from gridhpo.steering.space import SearchSpace, parse_space
from gridhpo.steering.task_section import Section
from gridhpo.steering.task_section import parse_duration as parse_duration  # its import path for the CLI

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Limits on what a task may ask for (docs/taskfile.md, "Limits"): beyond them one task
# would exhaust the steering's memory or time, which every other task shares.
MAX_POINTS = 1_000_000
MAX_PARALLEL = 10_000  # budget.parallel, budget.min_queued
MAX_ATTEMPTS = 100
MAX_SEED = (1 << 32) - 1  # numpy's seeds (skopt, nevergrad) stop there


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


# --------------------------------------------------------------------------- section parsers


_TOP = {"name", "search_space", "objective", "constraints", "optimiser", "budget", "evaluation", "early_stopping"}


def _parse(raw: object, source: str, base_dir: Path | None) -> TaskSpec:
    top = Section(raw, "", source, _TOP)
    name = _parse_name(top)
    space = _parse_space_section(top)
    # parsed in file order, so the first error reported is the first in the file
    goals = _parse_goals(top)
    optimiser = _parse_optimiser(top)
    budget = _parse_budget(top)
    evaluation = _parse_evaluation(top, base_dir)
    early = _parse_early_stopping(top)
    spec = TaskSpec(name, space, goals.objectives[0], _resolve_auto(optimiser, space, budget, source, goals),
                    budget, evaluation, early, goals.objectives, goals.constraints)
    _check_plugins(spec, source)
    return spec


def _parse_name(top: Section) -> str:
    if not top.has("name"):
        top.fail("name", "is missing (a short identifier such as mlp-digits)")
    name: str = top.text("name")
    try:
        check_name(name, "name")
    except ConfigError as exc:
        raise ConfigError(f"{top.source}: {exc}") from None
    return name


def _parse_space_section(top: Section) -> SearchSpace:
    if top.raw.get("search_space") is None:
        top.fail("search_space", "is missing")
    try:
        return _parse_search_space(top.raw["search_space"])
    except ConfigError as exc:
        raise ConfigError(f"{top.source}: {exc}") from None


def _parse_goals(top: Section) -> Goals:
    """The objective (one, or a list) and the constraints: steering/objectives.py."""
    return parse_goals(top.raw.get("objective"), top.raw.get("constraints"), top.source)


def _parse_optimiser(top: Section) -> Optimiser:
    opt = top.section("optimiser", {"backend", "algorithm", "seed", "options", "command", "image", "timeout",
                                    "auto"})
    return Optimiser(
        backend=opt.text("backend", "auto"),
        algorithm=opt.text("algorithm"),
        seed=opt.integer("seed", None, 0, MAX_SEED),
        options=opt.options("options"),
        command=opt.text("command"),
        image=opt.text("image"),
        timeout=opt.duration("timeout", None),
        auto=opt.text("auto"),
    )


def _parse_budget(top: Section) -> Budget:
    b = top.section("budget", {"max_points", "parallel", "max_failures", "max_attempts", "min_queued"})
    return Budget(
        max_points=b.integer("max_points", 100, 1, MAX_POINTS),
        parallel=b.integer("parallel", 1, 1, MAX_PARALLEL),
        max_failures=b.integer("max_failures", None, 0, MAX_POINTS),
        max_attempts=b.integer("max_attempts", 3, 1, MAX_ATTEMPTS),
        min_queued=b.integer("min_queued", 0, 0, MAX_PARALLEL),
    )


def _parse_evaluation(top: Section, base_dir: Path | None) -> EvaluationSpec:
    e = top.section("evaluation", {"command", "image", "python", "source_dir", "env", "timeout", "grace",
                                   "heartbeat", "lost_after", "checkpoint", "resources", "files",
                                   "training_data", "points_per_job"})
    command, image, python = _parse_program(e)
    evaluation = EvaluationSpec(
        command=command,
        image=image,
        python=python,
        source_dir=_parse_source_dir(e, base_dir),
        env=_parse_env(e),
        timeout=e.duration("timeout", default_of(EvaluationSpec, "timeout")),
        grace=e.duration("grace", default_of(EvaluationSpec, "grace")),
        heartbeat=e.duration("heartbeat", default_of(EvaluationSpec, "heartbeat")),
        lost_after=e.duration("lost_after", default_of(EvaluationSpec, "lost_after")),
        checkpoint=_parse_checkpoint(e),
        resources=_parse_resources(e),
        **contract_fields(EvaluationSpec, e.raw, "evaluation", e.source, ("files", "training_data", "points_per_job")),
    )
    _check_times(e, evaluation)
    return evaluation


def _parse_program(e: Section) -> tuple[str | None, str | None, str | None]:
    """What the evaluation runs: a shell command, a container image, or an in-process function."""
    command, image, python = e.text("command"), e.text("image"), e.text("python")
    if python is not None and (command is not None or image is not None):
        e.fail("evaluation", "give either 'python' (an in-process module:function) or 'command'/'image', not both")
    if python is None and command is None and image is None:
        e.fail("evaluation",
               "needs 'command' (a shell command), 'image' (a container image) or 'python' (module:function)")
    if python is not None and not re.match(r"^[\w.]+:[\w]+$", python):
        e.fail("evaluation.python", f"{python!r} is not of the form package.module:function")
    return command, image, python


def _parse_source_dir(e: Section, base_dir: Path | None) -> str | None:
    """A relative source_dir is taken from the task file's folder (the folder itself when absent)."""
    src: str | None = e.text("source_dir")
    if src is None and base_dir is not None:
        src = str(base_dir)
    elif src is not None and base_dir is not None and not Path(src).is_absolute():
        src = str((base_dir / src).resolve())
    return src


def _parse_env(e: Section) -> dict[str, str]:
    env = e.mapping("env")
    for k, v in env.items():
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            e.fail(f"evaluation.env.{k}", f"{v!r} is not a string or number")
    return {k: str(v) for k, v in env.items()}


def _parse_checkpoint(e: Section) -> CheckpointSpec:
    c = e.section("checkpoint", {"interval", "keep", "max_size", "store", "signing_key", "save", "load"})
    return CheckpointSpec(
        interval=c.duration("interval", default_of(CheckpointSpec, "interval")),
        keep=c.integer("keep", default_of(CheckpointSpec, "keep"), 1),
        # phpo's 100 MB cap is the default for a checkPointToSave list
        max_size=c.integer("max_size", SAVE_LIST_MAX_SIZE if c.has("save") else default_of(CheckpointSpec,
                                                                                            "max_size"), 1),
        store=c.text("store"),
        signing_key=c.text("signing_key"),
        **contract_fields(CheckpointSpec, c.raw, "evaluation.checkpoint", c.source, ("save", "load")),
    )


def _parse_resources(e: Section) -> Resources:
    r = e.section("resources", {"cpus", "gpus", "memory"})
    memory = r.text("memory")
    if memory is not None and memory_bytes(memory) is None:
        r.fail(r.at("memory"), f"{memory[:MAX_MEMORY_CHARS]!r} is not a size such as 512m, 2g or 2GiB "
                               f"(at most {MAX_MEMORY_CHARS} characters)")
    return Resources(
        cpus=r.number("cpus", default_of(Resources, "cpus")),
        gpus=r.integer("gpus", default_of(Resources, "gpus")),
        memory=memory,
    )


def _check_times(e: Section, evaluation: EvaluationSpec) -> None:
    if evaluation.heartbeat <= 0:
        e.fail("evaluation.heartbeat", "must be more than 0 seconds")
    if evaluation.timeout is not None and evaluation.timeout <= 0:
        e.fail("evaluation.timeout", "must be more than 0 seconds (leave it out for no limit)")
    if evaluation.lost_after <= evaluation.heartbeat:
        e.fail("evaluation.lost_after",
               f"{evaluation.lost_after:g}s must be longer than heartbeat ({evaluation.heartbeat:g}s)")


def _parse_early_stopping(top: Section) -> EarlyStopping:
    s = top.section("early_stopping", {"scheduler", "resource", "min_resource", "max_resource", "reduction_factor",
                                       "grace", "revive", "options"})
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
    return early


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
