"""phpo's options of the evaluation contract as task-file fields (docs/atlas.md, "The evaluation contract").

evaluationInput, evaluationOutput, evaluationTrainingData, evaluationMeta, evaluationMetrics →
``evaluation.files``; trainingDS (and a segment's ``files``) → ``evaluation.training_data``, the
list written to input_ds.json; checkPointToSave (phpo's comma-separated list), checkPointToLoad →
``evaluation.checkpoint.save``/``load`` (phpo's 100 MB cap is the task file's default with
``save``); maxPointsPerEvaluationJob → ``evaluation.points_per_job``. Every phpo task also gets
``objective.exhausted_value``: phpo's FAQ registers "a very large loss" for a point whose attempts
all ran out, so that the task goes on.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridhpo.errors import ConfigError
from gridhpo.protocol.evaluation import FilesSpec, bad_file_name, bad_relative_path

# phpo's "very large loss". The public sources do not give iDDS's number; this one is large
# enough to rank below any real loss, and small enough for every optimiser's arithmetic (a
# float's maximum overflows the moment an optimiser squares or sums it).
VERY_LARGE_LOSS = 1.0e30
_FILES = {"evaluationInput": "input", "evaluationOutput": "output", "evaluationTrainingData": "training_data",
          "evaluationMeta": "meta", "evaluationMetrics": "metrics"}


def training_files(opts: Mapping[str, Any], folder: Path, source: str, warnings: list[str]) -> list[str] | None:
    """The training data list of trainingDS: a list of names as given (gridhpo's extension), or a
    folder of this machine (relative to the options file) whose files are listed with their full
    paths (iDDS: "full paths to training data files" when read from the storage directly); any
    other string is a Rucio dataset, which only PanDA resolves: None, with a warning."""
    ds = opts.get("trainingDS")
    if ds is None:
        return None
    if isinstance(ds, list):
        if not all(isinstance(f, str) and f for f in ds):
            raise ConfigError(f"{source}: trainingDS: {ds!r} is not a list of file names")
        return list(ds)
    if not isinstance(ds, str) or not ds.strip():
        raise ConfigError(f"{source}: trainingDS: {ds!r} is not a dataset name, a folder or a list of files")
    path = folder / ds
    if path.is_dir():
        return sorted(str(p.resolve()) for p in path.rglob("*") if p.is_file())
    warnings.append(f"{source}: trainingDS: {ds!r} is not a folder here: a Rucio dataset is PanDA's, so no "
                    "input_ds.json is written; give a folder or a list of files (docs/atlas.md)")
    return None


def segment_files(all_files: list[str] | None, inputs: tuple[str, ...], opts: Mapping[str, Any],
                  folder: Path) -> list[str]:
    """A segment's part of the training data: its ``files`` (or ``datasets``), as paths inside
    trainingDS when that is a folder of this machine, else as named."""
    ds = opts.get("trainingDS")
    if isinstance(ds, str) and (folder / ds).is_dir():
        return [str((folder / ds / f).resolve()) for f in inputs]
    return list(inputs) if inputs or all_files is None else list(all_files)


def check_names(opts: Mapping[str, Any], source: str) -> None:
    """The file names, checked as the task file checks them, but named by their phpo option."""
    seen: dict[str, str] = {}
    for key in _FILES:
        name = opts.get(key)
        if name is None:
            continue
        if why := bad_file_name(name):
            raise ConfigError(f"{source}: {key}: {name!r} is not a file name of the work directory ({why})")
        if name in seen:
            raise ConfigError(f"{source}: {key}: {name!r} is {seen[name]}'s name too; each file needs its own")
        seen[name] = key
    for path in contract_checkpoint(opts, source).get("save", []):
        if why := bad_relative_path(path):
            raise ConfigError(f"{source}: checkPointToSave: {path!r} is not a path inside the work directory ({why})")


def contract_evaluation(opts: Mapping[str, Any], training: list[str] | None) -> dict[str, Any]:
    """The evaluation section's fields of the contract, for one task."""
    out: dict[str, Any] = {}
    files = {field: opts[key] for key, field in _FILES.items()
             if key in opts and opts[key] != getattr(FilesSpec, field)}
    if files:
        out["files"] = files
    if training is not None:
        out["training_data"] = training
    if opts.get("maxPointsPerEvaluationJob"):
        out["points_per_job"] = opts["maxPointsPerEvaluationJob"]
    return out


def contract_checkpoint(opts: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``save``/``load`` of the checkpoint section (checkPointToSave is a comma-separated list)."""
    out: dict[str, Any] = {}
    if "checkPointToSave" in opts:
        save = [p.strip().rstrip("/") for p in str(opts["checkPointToSave"]).split(",") if p.strip()]
        out["save"] = [p[2:] if p.startswith("./") else p for p in save]
    if "checkPointToLoad" in opts:
        if "checkPointToSave" not in opts:
            raise ConfigError(f"{source}: checkPointToLoad: needs checkPointToSave (the files the tarball holds)")
        out["load"] = opts["checkPointToLoad"]
    return out
