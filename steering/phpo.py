"""phpo's options file (``phpo --loadJson``, also what ``--dumpJson`` writes) as a gridhpo task.

The keys are the ``dest`` names of PanDAWMS/panda-client ``pandaclient/PhpoScript.py``; their
defaults and meaning are phpo's. ``convert`` is pure: it returns the task (a mapping that
``parse_task`` validates) and one warning per option that has no effect here, with its reason.
An unknown key is an error naming it (phpo itself only warns; a typo that silently changes
nothing is what the task file refuses too). docs/atlas.md has the table this module implements.
"""
from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.phpo_contract import (
    VERY_LARGE_LOSS,
    check_names,
    contract_checkpoint,
    contract_evaluation,
    segment_files,
    training_files,
)

# phpo's sandbox: every *.json, *.py, *.sh, *.yaml below the submit folder lands in the work
# directory before the evaluation runs. Here they are copied from the task folder
# ($GRIDHPO_TASK_DIR), never over a file the pilot wrote (input.json, gridhpo.json).
SANDBOX_COPY = (
    'for f in $(cd "$GRIDHPO_TASK_DIR" && find . -type f \\( -name "*.json" -o -name "*.py" -o -name "*.sh" '
    '-o -name "*.yaml" \\)); do [ -e "$f" ] || { mkdir -p "$(dirname "$f")" && cp "$GRIDHPO_TASK_DIR/$f" "$f"; }; '
    'done; '
)

# options that mean something only to PanDA: accepted, ignored, with the reason
IGNORED: dict[str, str] = {
    "outDS": "PanDA's output dataset; used only as the task name when --name is not given",
    "official": "PanDA's official-dataset flag",
    "site": "PanDA chooses sites; here a pilot serves the task wherever it is started",
    "workingGroup": "a PanDA working group",
    "noSubmit": "phpo's dry run; use gridhpo submit --dry-run",
    "python3": "phpo's own interpreter choice",
    "voms": "grid proxy roles; gridhpo authenticates pilots by the task token",
    "vomsRoles": "grid proxy roles; gridhpo authenticates pilots by the task token",
    "noEmail": "PanDA's e-mail notification",
    "intrSrv": "PanDA's developer server",
    "verbose": "phpo's verbosity; use gridhpo -v",
    "version": "phpo's --version",
    "loadJson": "the file being read",
    "dumpJson": "phpo's output file",
    "helpGroup": "phpo's help",
    "alrbArgs": "ATLAS's ALRB container wrapper; the pilot's container runtime runs the image",
    "architecture": "PanDA's site brokerage by CPU/GPU; start pilots on the machines you want",
    "returnCode": "phpo's submission result (--dumpJson)",
    "returnOut": "phpo's submission result (--dumpJson)",
    "jediTaskID": "phpo's submission result (--dumpJson)",
    "maxEvaluationJobs": "gridhpo limits attempts per point (budget.max_attempts 3, phpo's own per-point "
                         "limit), not jobs in total",
}
_INT = ("maxPoints", "nParallelEvaluation", "maxEvaluationJobs", "maxPointsPerEvaluationJob", "nPointsPerIteration",
        "minUnevaluatedPoints", "checkPointInterval")
_STR = ("steeringExec", "steeringContainer", "searchSpaceFile", "evaluationExec", "evaluationContainer",
        "evaluationInput", "evaluationOutput", "segmentSpecFile", "evaluationTrainingData", "evaluationMeta",
        "evaluationMetrics", "checkPointToSave", "checkPointToLoad")
KNOWN = frozenset(_INT) | frozenset(_STR) | frozenset(IGNORED) | {"trainingDS"}
# the defaults of PhpoScript.py
DEFAULTS: dict[str, Any] = {"maxPoints": 10, "nParallelEvaluation": 1, "nPointsPerIteration": 2,
                            "minUnevaluatedPoints": 0, "evaluationInput": "input.json",
                            "evaluationOutput": "output.json", "evaluationTrainingData": "input_ds.json",
                            "checkPointInterval": 5}
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_WORKDIR_SOURCES = ("$(pwd)", "$PWD", "${PWD}", "`pwd`")


@dataclass
class Conversion:
    tasks: list[dict[str, Any]]  # one; with segmentSpecFile one per segment (steering/segments.py)
    warnings: list[str] = field(default_factory=list)

    @property
    def task(self) -> dict[str, Any]:
        return self.tasks[0]


def load_options(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the phpo options file ({exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON (phpo --loadJson reads JSON): {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a phpo options file is a JSON object of option: value")
    return raw


def convert(raw: Mapping[str, Any], source: str, folder: Path, name: str | None = None) -> Conversion:
    """The task for phpo options ``raw`` read from ``source`` in ``folder`` (relative file names
    are taken from there, as phpo takes them from the folder it is run in)."""
    for key in raw:
        if key not in KNOWN:
            raise ConfigError(f"{source}: {unknown_name('phpo option', str(key), KNOWN)}")
    opts = {**DEFAULTS, **{k: _typed(k, v, source) for k, v in raw.items() if v is not None}}
    out = Conversion(tasks=[])
    for key in sorted(raw):
        if key in IGNORED and raw[key] not in (None, False, "") and raw[key] != DEFAULTS.get(key):
            out.warnings.append(f"{source}: {key}: ignored ({IGNORED[key]})")
    for key in ("steeringExec", "evaluationExec", "searchSpaceFile"):
        if key not in opts:
            raise ConfigError(f"{source}: {key}: is missing (phpo needs it too)")

    space_file = folder / opts["searchSpaceFile"]
    space = _read_space(space_file)
    base = name or task_name(opts.get("outDS"), source)
    program = steering_program(opts, source)
    check_names(opts, source)  # errors name the phpo option, before the task file's own checks
    training = training_files(opts, folder, source, out.warnings)
    if "segmentSpecFile" in opts:
        from gridhpo.steering import segments

        segs = segments.load(folder / opts["segmentSpecFile"])
        for seg, seg_space in zip(segs, segments.spaces(space, segs, str(space_file)), strict=True):
            # each segment's input_ds.json lists only its own files, as phpo gives each its part
            files = None if training is None else segment_files(training, seg.inputs, opts, folder)
            task = _task(opts, program, seg_space, str(space_file), folder, f"{base}.{seg.name}", out.warnings,
                         seg.name, files)
            out.tasks.append(segments.segment_task(task, seg, base))
    else:
        if not isinstance(space, dict):
            raise ConfigError(f"{space_file}: a search space is a JSON object of name: {{method, dimension}}")
        out.tasks.append(_task(opts, program, space, str(space_file), folder, base, out.warnings, None, training))
    out.warnings = list(dict.fromkeys(out.warnings))  # a cloned space warns once, not once per segment
    return out


def _task(opts: Mapping[str, Any], program: Mapping[str, Any], space: dict[str, Any], space_source: str,
          folder: Path, name: str, warnings: list[str], segment: str | None,
          training: list[str] | None) -> dict[str, Any]:
    """One task of the options ``opts`` with ``space``; ``segment`` replaces %SEGMENT_NAME."""
    optimiser: dict[str, Any] = {"backend": "steering", **copy.deepcopy(dict(program)),
                                 "options": {"points_per_call": opts["nPointsPerIteration"],
                                             "opt_space": copy.deepcopy(space)}}
    if "mount" in optimiser:
        optimiser["options"]["mount"] = optimiser.pop("mount")
    command = opts["evaluationExec"] if segment is None else opts["evaluationExec"].replace("%SEGMENT_NAME", segment)
    evaluation: dict[str, Any] = {"command": SANDBOX_COPY + command, "source_dir": str(folder),
                                  "checkpoint": {"interval": f"{opts['checkPointInterval']}m",
                                                 **contract_checkpoint(opts, name)},
                                  **contract_evaluation(opts, training)}
    if "evaluationContainer" in opts:
        evaluation["image"] = opts["evaluationContainer"]
    return {
        "name": name,
        "search_space": _distinct_categories(space, space_source, warnings),
        "objective": {"metric": "loss", "mode": "min", "exhausted_value": VERY_LARGE_LOSS},
        "optimiser": optimiser,
        "budget": {"max_points": opts["maxPoints"], "parallel": opts["nParallelEvaluation"],
                   "min_queued": opts["minUnevaluatedPoints"], "max_attempts": 3},
        "evaluation": evaluation,
    }


def _distinct_categories(space: dict[str, Any], source: str, warnings: list[str]) -> dict[str, Any]:
    """hyperopt's hp.choice takes a category listed twice (phpo's own example lists ``[1, 1, 2]``);
    a gridhpo space lists each once. The task's space only checks the steering's points, the
    steering samples ``opt_space`` as written, so keeping each once changes nothing it does."""
    out = copy.deepcopy(space)
    for name, spec in out.items():
        dim = spec.get("dimension") if isinstance(spec, dict) and spec.get("method") == "categorical" else None
        if not isinstance(dim, dict) or not isinstance(dim.get("categories"), list):
            continue  # the task file's own check names what is wrong
        cats = dim["categories"]
        distinct: list[Any] = []
        for c in cats:
            if not any(type(c) is type(d) and c == d for d in distinct):
                distinct.append(c)
        if len(distinct) < len(cats):
            warnings.append(f"{source}: {name}: categories {json.dumps(cats)} list a value twice: the task's space "
                            f"keeps {json.dumps(distinct)}, the steering still reads them as written (opt_space)")
            dim["categories"] = distinct
    return out


def _read_space(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the search space file ({exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc


def _typed(key: str, value: Any, source: str) -> Any:
    """phpo's types; like phpo, a string of digits is an integer."""
    if key in _INT:
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{source}: {key}: {value!r} is not a non-negative integer")
        if key in ("maxPoints", "nParallelEvaluation", "nPointsPerIteration") and value < 1:
            raise ConfigError(f"{source}: {key}: {value!r} must be at least 1")
    elif key in _STR:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{source}: {key}: {value!r} is not a non-empty string")
    return value


def task_name(out_ds: object, source: str) -> str:
    """phpo names the task after outDS; without it, after the options file."""
    base = out_ds if isinstance(out_ds, str) and out_ds.strip("/") else Path(source).stem
    name = _NAME_CHARS.sub("-", str(base).strip("/")).strip("-._") or "phpo"
    return name[:128]


def steering_program(opts: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``command``, ``image`` (and ``mount``) of the steering backend for steeringExec/steeringContainer.

    With steeringContainer, steeringExec runs inside that image (iDDS prepends ``run --rm -v
    $(pwd):DIR IMAGE``). Without, steeringExec is phpo's arguments of ``docker``: ``run [opts]
    IMAGE CMD...``. One that does not start with ``run`` is a plain command on the steering's
    machine: gridhpo's extension for a steering without an image."""
    exec_ = str(opts["steeringExec"]).strip()
    if "steeringContainer" in opts:
        return {"command": exec_, "image": opts["steeringContainer"]}
    try:
        argv = shlex.split(exec_)
    except ValueError as exc:
        raise ConfigError(f"{source}: steeringExec: cannot split {exec_!r}: {exc}") from None
    if not argv or argv[0] != "run":
        return {"command": exec_}
    return _docker_run(argv, source)


def _docker_run(argv: list[str], source: str) -> dict[str, Any]:
    """``run [opts] IMAGE CMD...``: the image, the command and the mounted working folder."""
    out, i = _docker_options(argv, source)
    if i >= len(argv):
        raise ConfigError(f"{source}: steeringExec: no image after 'run' and its options")
    out["image"] = argv[i]
    rest = argv[i + 1:]
    if not rest:
        raise ConfigError(f"{source}: steeringExec: no command after the image {argv[i]!r}")
    out["command"] = shlex.join(rest)
    return out


def _docker_options(argv: list[str], source: str) -> tuple[dict[str, Any], int]:
    """The options of ``run`` that a steering may have (--rm, -v $(pwd):DIR, -w DIR): the mount,
    and the index of the image after them."""
    out: dict[str, Any] = {}
    workdir: str | None = None
    i = 1
    while i < len(argv) and argv[i].startswith("-"):
        opt = argv[i]
        value: str | None = None
        if opt in ("-v", "--volume", "-w", "--workdir"):
            if i + 1 >= len(argv):
                raise ConfigError(f"{source}: steeringExec: docker option {opt} has no value")
            value, i = argv[i + 1], i + 2
        elif opt.startswith(("--volume=", "--workdir=")):
            opt, value = opt.split("=", 1)
            i += 1
        elif opt == "--rm":
            i += 1
            continue  # the steering's containers are always removed
        else:
            raise ConfigError(f"{source}: steeringExec: docker option {opt!r} is not supported "
                              "(supported: --rm, -v $(pwd):DIR, -w DIR)")
        if opt in ("-v", "--volume"):
            src, _, dest = value.partition(":")
            if src not in _WORKDIR_SOURCES or not dest.startswith("/"):
                raise ConfigError(f"{source}: steeringExec: volume {value!r}: only the working folder can be "
                                  "mounted ($(pwd):/DIR): the steering's files are %IN and %OUT there")
            out["mount"] = dest.split(":")[0]  # a trailing :rw or :z is the mount's mode
        else:
            workdir = value
    if workdir is not None and workdir != out.get("mount"):
        raise ConfigError(f"{source}: steeringExec: -w {workdir!r} must be the mounted folder "
                          "(the steering runs where %IN and %OUT are)")
    return out, i
