"""The evaluation section of a task, as the steering stores it and sends it with every point,
and the objective and budget a point message carries: one frozen dataclass each, whose
defaults are defined here once.

The task file loader (``gridhpo.steering.taskfile``) builds an ``EvaluationSpec`` from the
file (durations such as ``"5m"``, paths, unknown keys refused); the bookkeeping stores its
``to_wire()``; the point message carries the same; the pilot reads it back with
``from_wire()``. A value given is used as given (``grace: 0`` is no grace period); a field
left out of the wire takes the default; a bad field is a ``MessageError`` naming it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

from gridhpo.errors import MessageError

_T = TypeVar("_T")

OBJECTIVE_MODES = ("min", "max")


def default_of(cls: type[Any], name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls``: a fresh value for a factory."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


class _Fields:
    """Reads one wire mapping: a field left out (or, for an optional one, null) takes the
    dataclass's default; a bad one is a MessageError naming ``where.key``."""

    def __init__(self, raw: object, where: str, cls: type[Any]) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise MessageError(f"{where}: {str(raw)[:200]} is not a mapping")
        self.raw: Mapping[str, Any] = raw
        self.where = where
        self.cls = cls

    def fail(self, key: str, value: object, what: str) -> MessageError:
        shown = str(value)[:200] if isinstance(value, (dict, list)) else repr(value)[:200]
        return MessageError(f"{self.where}.{key}: {shown} is not {what}")

    def value(self, key: str) -> Any:
        if key in self.raw:
            return self.raw[key]
        default = default_of(self.cls, key)
        if default is dataclasses.MISSING:
            raise MessageError(f"{self.where}.{key} is missing")
        return default

    def section(self, key: str) -> object:
        """A nested mapping's wire form; left out, all its fields take their defaults."""
        return self.raw[key] if key in self.raw else {}

    def text(self, key: str) -> str | None:
        v = self.value(key)
        if v is not None and not isinstance(v, str):
            raise MessageError(f"{self.where}.{key}: {str(v)[:200]} is not text")
        return v

    def optional_seconds(self, key: str, positive: bool) -> float | None:
        """Seconds, or None (no limit)."""
        return None if self.value(key) is None else self.seconds(key, positive)

    def seconds(self, key: str, positive: bool) -> float:
        v = self.value(key)
        if not _finite(v) or v < 0 or (positive and v == 0):
            raise self.fail(key, v, "a number of seconds " + ("above 0" if positive else "of 0 or more"))
        return float(v)

    def number(self, key: str) -> float:
        v = self.value(key)
        if not _finite(v) or v < 0:
            raise self.fail(key, v, "a number of 0 or more")
        return float(v)

    def integer(self, key: str, minimum: int) -> int:
        v = self.value(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(key, v, f"an integer of {minimum} or more")
        return v

    def word(self, key: str) -> str:
        v = self.value(key)
        if not isinstance(v, str) or not v:
            raise self.fail(key, v, "a non-empty string")
        return v

    def optional_integer(self, key: str, minimum: int) -> int | None:
        return None if self.value(key) is None else self.integer(key, minimum)

    def file_name(self, key: str) -> str | None:
        """A file of the work directory the pilot writes or reads: one plain name."""
        v = self.text(key)
        if v is not None and (why := bad_file_name(v)):
            raise self.fail(key, v, f"a file name of the work directory ({why})")
        return v

    def strings(self, key: str, most: int, relative: bool = False) -> list[str]:
        """A list of non-empty strings (``relative``: paths inside the work directory)."""
        v = self.value(key)
        if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v) or len(v) > most:
            raise self.fail(key, v, f"a list of at most {most} non-empty strings")
        for s in v if relative else ():
            if why := bad_relative_path(s):
                raise self.fail(key, s, f"a path inside the work directory ({why})")
        return list(v)

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        v = self.value(key)
        if v not in choices:
            raise self.fail(key, v, f"one of {', '.join(choices)}")
        return str(v)


# what the pilot itself keeps in a work directory: no evaluation file may take these names
RESERVED_FILES = frozenset({"gridhpo.json", "metrics.jsonl", "checkpoint", "stdout.log", "stderr.log"})
MAX_SAVE_PATHS = 100  # entries of evaluation.checkpoint.save
MAX_TRAINING_FILES = 10_000  # entries of evaluation.training_data...
MAX_TRAINING_BYTES = 256 << 10  # ...and their JSON: every point message carries the list
SAVE_LIST_MAX_SIZE = 100_000_000  # phpo's cap on checkPointToSave (100 MB): max_size's default with save


def bad_file_name(name: str) -> str:
    """Why ``name`` cannot be a file the pilot writes or reads in a work directory ("" if it can)."""
    if "/" in name or "\\" in name or name in (".", ".."):
        return "one name, no folder"
    if name.startswith("."):
        return "the pilot's own files start with '.'"
    if name in RESERVED_FILES:
        return f"{name} is the pilot's own"
    if len(name) > 255 or not name.isprintable():
        return "printable, at most 255 characters"
    return ""


def bad_relative_path(path: str) -> str:
    """Why ``path`` is not a file or folder inside a work directory ("" if it is)."""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "relative, without '.', '..' or empty parts"
    if len(path) > 1024 or not path.isprintable():
        return "printable, at most 1024 characters"
    return ""


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class CheckpointSpec:
    """``evaluation.checkpoint``: how often and how many checkpoints a pilot uploads."""

    interval: float = 300.0  # seconds between uploads of a changed checkpoint/ folder
    keep: int = 3  # newest checkpoints kept per point
    max_size: int = 1 << 30  # bytes of one checkpoint archive
    store: str | None = None  # object-store URL; else the pilot's --store / GRIDHPO_STORE
    signing_key: str | None = None  # HMAC key for manifests; "env:NAME" reads it from the pilot's environment
    # phpo's checkPointToSave: files and folders of the work directory saved instead of checkpoint/
    save: list[str] = field(default_factory=list)
    load: str | None = None  # phpo's checkPointToLoad: restore them as this tarball, not extracted

    @classmethod
    def from_wire(cls, raw: object, where: str = "evaluation.checkpoint") -> CheckpointSpec:
        f = _Fields(raw, where, cls)
        spec = cls(interval=f.seconds("interval", positive=False), keep=f.integer("keep", 1),
                   max_size=f.integer("max_size", 1), store=f.text("store"), signing_key=f.text("signing_key"),
                   save=f.strings("save", MAX_SAVE_PATHS, relative=True), load=f.file_name("load"))
        if spec.load is not None and not spec.save:
            raise f.fail("load", spec.load, "usable without save (the files the tarball holds)")
        return spec


@dataclass(frozen=True)
class FilesSpec:
    """``evaluation.files``: the names of the files of the ATLAS evaluation contract (phpo's
    evaluationInput, evaluationOutput, evaluationTrainingData, evaluationMeta, evaluationMetrics)."""

    input: str = "input.json"  # the point's parameters, written by the pilot
    output: str = "output.json"  # the result, read by the pilot
    training_data: str = "input_ds.json"  # the list evaluation.training_data, written when it is given
    meta: str | None = None  # a JSON object of at most 1 MiB, kept per attempt
    metrics: str | None = None  # a file or tarball of any kind, kept per attempt

    @classmethod
    def from_wire(cls, raw: object, where: str = "evaluation.files") -> FilesSpec:
        f = _Fields(raw, where, cls)
        spec = cls(input=f.file_name("input") or cls.input, output=f.file_name("output") or cls.output,
                   training_data=f.file_name("training_data") or cls.training_data, meta=f.file_name("meta"),
                   metrics=f.file_name("metrics"))
        seen: dict[str, str] = {}
        for key in ("input", "output", "training_data", "meta", "metrics"):
            name = getattr(spec, key)
            if name is not None and name in seen:
                raise f.fail(key, name, f"a name of its own (it is {seen[name]}'s too)")
            seen.setdefault(name, key)
        return spec


# matched against the stripped text with one \s*: linear (a \s* on each side of the unit
# backtracked for minutes on "1" + spaces + "x", at every point start on every pilot)
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.IGNORECASE)
MAX_MEMORY_CHARS = 32
_MEMORY_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def memory_bytes(text: str) -> int | None:
    """``evaluation.resources.memory`` ("512m", "2g", "2GiB", "1073741824") in bytes; None if
    it is not such a size (or longer than MAX_MEMORY_CHARS)."""
    m = _MEMORY.fullmatch(text.strip()) if len(text) <= MAX_MEMORY_CHARS else None
    if m is None or not math.isfinite(size := float(m.group(1)) * _MEMORY_SCALE[m.group(2).lower()]):
        return None
    return int(size)


@dataclass(frozen=True)
class Resources:
    """``evaluation.resources``: what a container runtime reserves for one evaluation."""

    cpus: float = 1.0
    gpus: int = 0
    memory: str | None = None  # "512m", "2g"; checked by the runtime that uses it

    @classmethod
    def from_wire(cls, raw: object, where: str = "evaluation.resources") -> Resources:
        f = _Fields(raw, where, cls)
        return cls(cpus=f.number("cpus"), gpus=f.integer("gpus", 0), memory=f.text("memory"))


class _WireForm:
    """A section's JSON form: ``to_wire()``, stored in the bookkeeping and sent with every point,
    and ``wire``, the same made once per object (every point of a task carries it: read it,
    never change it)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # every subclass is a dataclass

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @functools.cached_property
    def wire(self) -> dict[str, Any]:
        return self.to_wire()


@dataclass(frozen=True)
class EvaluationSpec(_WireForm):
    """The task's ``evaluation`` section: what runs for each point and how it is watched."""

    command: str | None = None  # a shell command (process runtime) or the container's command
    image: str | None = None  # a container image
    python: str | None = None  # module:function, evaluated in the pilot
    source_dir: str | None = None  # GRIDHPO_TASK_DIR
    env: dict[str, str] = field(default_factory=dict)  # extra environment variables of the evaluation
    timeout: float | None = None  # seconds an attempt may run; None: no limit
    grace: float = 30.0  # seconds between SIGTERM and kill when an evaluation is stopped; 0 allowed
    heartbeat: float = 10.0  # seconds between a pilot's heartbeats; more than 0
    lost_after: float = 120.0  # seconds of silence after which the steering re-queues a point
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    resources: Resources = field(default_factory=Resources)
    files: FilesSpec = field(default_factory=FilesSpec)
    training_data: list[str] | None = None  # written as a JSON list to files.training_data (input_ds.json)
    points_per_job: int | None = None  # phpo's maxPointsPerEvaluationJob: a pilot exits after this many

    @classmethod
    def from_wire(cls, raw: object, where: str = "evaluation") -> EvaluationSpec:
        f = _Fields(raw, where, cls)
        env = f.value("env")
        if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
            raise MessageError(f"{where}.env: {str(env)[:200]} is not a mapping of strings")
        return cls(
            command=f.text("command"), image=f.text("image"), python=f.text("python"),
            source_dir=f.text("source_dir"), env={str(k): v for k, v in env.items()},
            timeout=f.optional_seconds("timeout", positive=True),
            grace=f.seconds("grace", positive=False),
            heartbeat=f.seconds("heartbeat", positive=True),
            lost_after=f.seconds("lost_after", positive=True),
            checkpoint=CheckpointSpec.from_wire(f.section("checkpoint"), f"{where}.checkpoint"),
            resources=Resources.from_wire(f.section("resources"), f"{where}.resources"),
            files=FilesSpec.from_wire(f.section("files"), f"{where}.files"),
            training_data=_training_data(f),
            points_per_job=f.optional_integer("points_per_job", 1),
        )


def _training_data(f: _Fields) -> list[str] | None:
    if f.value("training_data") is None:
        return None
    files = f.strings("training_data", MAX_TRAINING_FILES)
    if len(json.dumps(files)) > MAX_TRAINING_BYTES:
        raise f.fail("training_data", f"{len(files)} names", f"at most {MAX_TRAINING_BYTES} bytes of JSON (every "
                     "point message carries it): list the files in a file of the task folder instead")
    return files


@dataclass(frozen=True)
class PointObjective(_WireForm):
    """The objective as a point message carries it: the key of the result in output.json."""

    metric: str = "loss"
    mode: str = "min"  # one of OBJECTIVE_MODES

    @classmethod
    def from_wire(cls, raw: object, where: str = "objective") -> PointObjective:
        f = _Fields(raw, where, cls)
        metric = f.value("metric")
        if not isinstance(metric, str) or not metric:
            raise MessageError(f"{where}.metric: {metric!r} is not a key name")
        return cls(metric=metric, mode=f.choice("mode", OBJECTIVE_MODES))


@dataclass(frozen=True)
class ResourceBudget(_WireForm):
    """What an evaluation under early stopping is told about its resource (e.g. epochs)."""

    resource: str
    min_resource: int
    max_resource: int
    scheduler: str

    @classmethod
    def from_wire(cls, raw: object, where: str = "budget") -> ResourceBudget | None:
        """None for an empty budget: the task has no early stopping."""
        if isinstance(raw, Mapping) and not raw:
            return None
        f = _Fields(raw, where, cls)
        return cls(resource=f.word("resource"), min_resource=f.integer("min_resource", 0),
                   max_resource=f.integer("max_resource", 0), scheduler=f.word("scheduler"))
