"""An hpogrid project (``hpo_config`` + ``model_config`` + ``search_space``, and ``grid_config``)
as a gridhpo task: ``gridhpo submit --hpogrid PATH``.

PATH is a project configuration file (JSON or YAML with ``project_name``, ``scripts_path`` and
the four configurations, as ``hpogrid project create`` writes it), or a folder holding one
(``config.json``/``config.yaml``/``project_config.json``/``project_config.yaml``), or a folder
holding the separate files ``hpo_config.json``, ``model_config.json``, ``search_space.json``
(and optionally ``grid_config.json``; the training scripts are then in that folder).
``convert`` is pure: the task (a mapping ``parse_task`` validates) and one warning per key that
has no effect here. docs/atlas.md has the tables this module implements.
"""
from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.loading import parse_text, read_text

# hpogrid's algorithm -> our backend; "tune" is Ray Tune's own random search, and hpogrid
# itself runs "bayesian" with hyperopt
ALGORITHMS: dict[str, str] = {"hyperopt": "hyperopt", "skopt": "skopt", "nevergrad": "nevergrad",
                              "optuna": "optuna", "random": "random", "tune": "random", "grid": "grid",
                              "bayesian": "hyperopt"}
REFUSED_ALGORITHMS: dict[str, str] = {
    "bohb": "gridhpo has no BOHB (a Ray Tune search algorithm tied to its bohbhyperband scheduler); "
            "the nearest is algorithm hyperopt with scheduler asynchyperband",
    "ax": "gridhpo has no Ax backend; skopt (a Gaussian process) or optuna are the nearest",
}
REFUSED_SCHEDULERS: dict[str, str] = {
    "bohbhyperband": "it only runs with the bohb algorithm, which gridhpo has not; asynchyperband maps to asha",
    "pbt": "population based training changes a running trial's hyperparameters; a gridhpo point keeps its own",
}
SCHEDULERS = ("asynchyperband", *REFUSED_SCHEDULERS)
# Ray Tune's AsyncHyperBandScheduler defaults (scheduler_param overrides them)
_ASHA_DEFAULTS: dict[str, Any] = {"time_attr": "training_iteration", "max_t": 100, "grace_period": 1,
                                  "reduction_factor": 4, "brackets": 1}
_ASHA_PARAMS = (*_ASHA_DEFAULTS, "metric", "mode")

# key -> (types, required); None in types: null allowed
_HPO: dict[str, tuple[tuple[type, ...], bool]] = {
    "algorithm": ((str,), False), "scheduler": ((str, type(None)), False), "metric": ((str,), False),
    "extra_metrics": ((list, str, type(None)), False), "mode": ((str,), False),
    "resource": ((dict, type(None)), False), "num_trials": ((int,), True), "log_dir": ((str, type(None)), False),
    "verbose": ((int,), False), "max_concurrent": ((int,), False), "stop": ((dict, type(None)), False),
    "scheduler_param": ((dict, type(None)), False), "algorithm_param": ((dict, type(None)), False),
}
_MODEL: dict[str, tuple[tuple[type, ...], bool]] = {
    "script": ((str,), True), "model": ((str,), True), "param": ((dict, type(None)), False)}
_GRID: dict[str, tuple[tuple[type, ...], bool]] = {
    "site": ((list, str, type(None)), False), "container": ((str, type(None)), False),
    "inDS": ((str, type(None)), False), "outDS": ((str, type(None)), False), "retry": ((int, type(None)), False),
    "extra": ((dict, type(None)), False)}
_PROJECT: dict[str, tuple[tuple[type, ...], bool]] = {
    "project_name": ((str,), False), "scripts_path": ((str,), False), "model_config": ((dict,), True),
    "search_space": ((dict,), True), "hpo_config": ((dict,), True), "grid_config": ((dict, type(None)), False)}
# keys that mean something only to Ray Tune or PanDA: accepted, ignored, with the reason
IGNORED: dict[str, str] = {
    "log_dir": "Ray Tune's log folder; the trials are in gridhpo's bookkeeping (gridhpo results)",
    "verbose": "Ray Tune's verbosity; use gridhpo -v",
    "extra_metrics": "Ray Tune's extra result columns; every value a trial reports is in its metrics.jsonl lines",
    "site": "PanDA chooses sites; here a pilot serves the task wherever it is started",
    "inDS": "a Rucio dataset; the trial finds its data where the pilot runs",
    "outDS": "PanDA's output dataset",
    "retry": "gridhpo retries an interrupted or lost attempt up to budget.max_attempts (3)",
    "extra": "extra options of PanDA's prun",
}
PROJECT_FILES = ("config.json", "config.yaml", "project_config.json", "project_config.yaml")
SET_FILES = {"hpo_config": "hpo_config.json", "model_config": "model_config.json",
             "search_space": "search_space.json", "grid_config": "grid_config.json"}
TRIAL_SOURCE = Path(__file__).with_name("hpogrid_trial.py")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Section:
    """One configuration, with where it came from for error messages (``file: where.key``)."""

    raw: dict[str, Any]
    file: str
    where: str  # "hpo_config." in a project file, "" in its own file

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.where}{key}: {message}")


@dataclass
class Project:
    name: str
    scripts_dir: Path
    hpo: Section
    model: Section
    space: Section
    grid: Section


@dataclass
class Conversion:
    task: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _read(path: Path) -> Any:
    try:
        return parse_text(read_text(path), path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc


def _checked(raw: object, file: str, where: str, keys: Mapping[str, tuple[tuple[type, ...], bool]],
             kind: str) -> Section:
    section = Section({}, file, where)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: {where.rstrip('.') or kind}: must be a mapping of {kind} options")
    for key, value in raw.items():
        if key not in keys:
            raise section.fail(str(key), f"{unknown_name(f'{kind} key', str(key), keys)}")
        types, _ = keys[key]
        if isinstance(value, bool) and bool not in types and key not in ("verbose", "retry"):
            raise section.fail(key, f"{value!r} is not {_type_names(types)}")
        if not isinstance(value, types):
            raise section.fail(key, f"{value!r} is not {_type_names(types)}")
    for key, (_, required) in keys.items():
        if required and raw.get(key) is None:
            raise section.fail(key, "is missing (hpogrid needs it too)")
    section.raw = dict(raw)
    return section


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", dict: "a mapping", list: "a list", type(None): "null"}
    return " or ".join(names[t] for t in types)


def _space(raw: object, file: str, where: str) -> Section:
    """A search_space file as hpogrid stores it: the parameters, or ``{"search_space": {...}}``."""
    if isinstance(raw, dict) and set(raw) == {"search_space"} and isinstance(raw["search_space"], dict) \
            and "method" not in raw["search_space"]:
        raw, where = raw["search_space"], f"{where}search_space."
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{file}: {where.rstrip('.') or 'search_space'}: must be a non-empty mapping of "
                          "name: {method, dimension}")
    return Section(dict(raw), file, where)


def load_project(path: Path) -> Project:
    """The project at ``path``: a project file, a folder with one, or a folder of separate files."""
    if path.is_dir():
        for name in PROJECT_FILES:
            if (path / name).is_file():
                return _from_project_file(path / name)
        missing = [f for key, f in SET_FILES.items() if key != "grid_config" and not (path / f).is_file()]
        if missing:
            raise ConfigError(f"{path}: not an hpogrid project: no {' / '.join(PROJECT_FILES)}, and no "
                              f"{', '.join(missing)}")
        return _from_files(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such hpogrid project file or folder")
    return _from_project_file(path)


def _from_project_file(path: Path) -> Project:
    raw = _read(path)
    top = _checked(raw, str(path), "", _PROJECT, "project")
    folder = path.resolve().parent
    scripts = top.raw.get("scripts_path")
    # without project_name: the project's folder when the file has one of hpogrid's own names
    unnamed = folder.name if path.name in PROJECT_FILES else path.stem
    return Project(name=top.raw.get("project_name") or unnamed,
                   scripts_dir=_scripts_dir(folder, scripts, top) if scripts else folder,
                   hpo=_checked(top.raw["hpo_config"], str(path), "hpo_config.", _HPO, "hpo_config"),
                   model=_checked(top.raw["model_config"], str(path), "model_config.", _MODEL, "model_config"),
                   space=_space(top.raw["search_space"], str(path), "search_space."),
                   grid=_checked(top.raw.get("grid_config"), str(path), "grid_config.", _GRID, "grid_config"))


def _from_files(folder: Path) -> Project:
    def one(key: str, keys: Mapping[str, tuple[tuple[type, ...], bool]]) -> Section:
        file = folder / SET_FILES[key]
        return _checked(_read(file) if file.is_file() else None, str(file), "", keys, key)

    space_file = folder / SET_FILES["search_space"]
    return Project(name=folder.resolve().name, scripts_dir=folder.resolve(), hpo=one("hpo_config", _HPO),
                   model=one("model_config", _MODEL), space=_space(_read(space_file), str(space_file), ""),
                   grid=one("grid_config", _GRID))


def _scripts_dir(folder: Path, scripts: str, top: Section) -> Path:
    """hpogrid's scripts_path: the training script itself, or the folder holding the scripts."""
    p = Path(scripts).expanduser()
    p = p if p.is_absolute() else folder / p
    if not p.exists():
        raise top.fail("scripts_path", f"{scripts!r}: no such file or folder (the training scripts)")
    return p.parent if p.is_file() else p


def convert(project: Project, name: str | None = None) -> Conversion:
    """The task for ``project``: hpo_config's algorithm, metric, mode, num_trials and
    max_concurrent, its scheduler where gridhpo has one, and the model run by hpogrid_trial.py."""
    out = Conversion(task={})
    hpo, model, grid = project.hpo, project.model, project.grid
    _check_space(project.space)
    for section in (hpo, grid):
        for key in sorted(section.raw):
            if key in IGNORED and section.raw[key] not in (None, "", [], {}, 0, False):
                out.warnings.append(f"{section.file}: {section.where}{key}: ignored ({IGNORED[key]})")
    num_trials, parallel = _positive(hpo, "num_trials", None), _positive(hpo, "max_concurrent", 3)
    mode = hpo.raw.get("mode") or "min"
    if mode not in ("min", "max"):
        raise hpo.fail("mode", f"{mode!r} is not 'min' or 'max'")
    metric = hpo.raw.get("metric") or "loss"
    iterations = _iterations(hpo)
    evaluation: dict[str, Any] = {"command": trial_command(model, iterations, metric),
                                  "source_dir": str(project.scripts_dir)}
    if grid.raw.get("container"):
        # the runtimes mount the scripts folder read-only at its own path (evaluation/runtimes/_base.py)
        evaluation["image"] = grid.raw["container"]
    resources = _resources(hpo)
    if resources:
        evaluation["resources"] = resources
    out.task = {
        "name": name or task_name(project.name),
        "search_space": project.space.raw,
        "objective": {"metric": metric, "mode": mode},
        "optimiser": _optimiser(hpo),
        "budget": {"max_points": num_trials, "parallel": parallel},
        "evaluation": evaluation,
    }
    early = _scheduler(hpo, iterations, out.warnings)
    if early is not None:
        out.task["early_stopping"] = early
    return out


def _check_space(space: Section) -> None:
    """The space's own errors name its own file (the task is checked as a whole afterwards)."""
    from gridhpo.steering.atlas import parse_atlas_space

    try:
        parse_atlas_space(space.raw, space.where.rstrip(".") or "search_space")
    except ConfigError as exc:
        raise ConfigError(f"{space.file}: {exc}") from None


def task_name(project_name: str) -> str:
    return (_NAME_CHARS.sub("-", project_name).strip("-._") or "hpogrid")[:128]


def trial_command(model: Section, iterations: int, metric: str) -> str:
    """hpogrid_trial.py as a here-document, so that the evaluation needs nothing but a Python 3."""
    args = [model.raw["script"], model.raw["model"], str(iterations), metric,
            json.dumps(model.raw.get("param") or {}, sort_keys=True)]
    return f"python3 - {shlex.join(args)} <<'GRIDHPO_HPOGRID_TRIAL'\n{TRIAL_SOURCE.read_text()}GRIDHPO_HPOGRID_TRIAL\n"


def _positive(section: Section, key: str, default: int | None) -> int:
    value = section.raw.get(key)
    if value is None:
        assert default is not None  # a required key is checked when the file is read
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise section.fail(key, f"{value!r} must be an integer of at least 1")
    return value


def _iterations(hpo: Section) -> int:
    """hpo_config.stop: hpogrid's default {"training_iteration": 1}; other criteria are Ray Tune's."""
    stop = hpo.raw.get("stop") or {"training_iteration": 1}
    for key in stop:
        if key != "training_iteration":
            raise hpo.fail(f"stop.{key}", "only training_iteration is supported (the number of reports a "
                                          "trial makes before it ends)")
    n = stop.get("training_iteration", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise hpo.fail("stop.training_iteration", f"{n!r} must be an integer of at least 1")
    return n


def _resources(hpo: Section) -> dict[str, Any]:
    """hpogrid's resource per trial; 0 (its default) means "what the machine has": our defaults."""
    raw = hpo.raw.get("resource") or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in ("cpu", "gpu"):
            raise hpo.fail(f"resource.{key}", f"{unknown_name('resource', str(key), ('cpu', 'gpu'))}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise hpo.fail(f"resource.{key}", f"{value!r} is not a number >= 0")
        if value:
            out["cpus" if key == "cpu" else "gpus"] = value if key == "cpu" else int(value)
    return out


def _optimiser(hpo: Section) -> dict[str, Any]:
    algorithm = hpo.raw.get("algorithm") or "random"
    if algorithm in REFUSED_ALGORITHMS:
        raise hpo.fail("algorithm", f"{algorithm!r} is not supported: {REFUSED_ALGORITHMS[algorithm]}")
    if algorithm not in ALGORITHMS:
        raise hpo.fail("algorithm", f"{unknown_name('algorithm', algorithm, (*ALGORITHMS, *REFUSED_ALGORITHMS))}")
    out: dict[str, Any] = {"backend": ALGORITHMS[algorithm]}
    params = dict(hpo.raw.get("algorithm_param") or {})
    params.pop("max_concurrent", None)  # Ray Tune's concurrency limiter: budget.parallel does that
    if "method" in params:  # hpogrid's nevergrad optimiser name (DoubleFastGADiscreteOnePlusOne, ...)
        if out["backend"] != "nevergrad":
            raise hpo.fail("algorithm_param.method", f"only the nevergrad algorithm takes a method, not {algorithm!r}")
        out["algorithm"] = params.pop("method")
    if params:
        out["options"] = params  # checked by the backend, with the names it knows
    return out


def _scheduler(hpo: Section, iterations: int, warnings: list[str]) -> dict[str, Any] | None:
    """asynchyperband (hpogrid's default) is asha; nothing to stop early in a one-report trial."""
    scheduler = hpo.raw.get("scheduler") or "asynchyperband"
    if scheduler in REFUSED_SCHEDULERS:
        raise hpo.fail("scheduler", f"{scheduler!r} is not supported: {REFUSED_SCHEDULERS[scheduler]}")
    if scheduler not in SCHEDULERS:
        raise hpo.fail("scheduler", f"{unknown_name('scheduler', scheduler, SCHEDULERS)}")
    raw = hpo.raw.get("scheduler_param") or {}
    for key in raw:
        if key not in _ASHA_PARAMS:
            raise hpo.fail(f"scheduler_param.{key}",
                           str(unknown_name("asynchyperband parameter", str(key), _ASHA_PARAMS)))
    p = {**_ASHA_DEFAULTS, **raw}
    if p["brackets"] != 1:
        raise hpo.fail("scheduler_param.brackets", f"{p['brackets']!r}: gridhpo's asha has one bracket")
    max_t = min(p["max_t"], iterations)  # a trial never reports past stop.training_iteration
    if max_t <= p["grace_period"]:
        if hpo.raw.get("scheduler"):
            warnings.append(f"{hpo.file}: {hpo.where}scheduler: asynchyperband stops nothing here (a trial reports "
                            f"{iterations} time(s), grace_period {p['grace_period']}): no early stopping")
        return None
    return {"scheduler": "asha", "resource": p["time_attr"], "min_resource": p["grace_period"],
            "max_resource": max_t, "reduction_factor": p["reduction_factor"]}
