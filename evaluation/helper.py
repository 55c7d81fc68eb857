"""A small helper for Python evaluations (optional: the contract is plain files).

    from gridhpo.evaluation import helper
    p = helper.params()                     # input.json
    for epoch in range(1, 11):
        ...
        helper.report(step=epoch, loss=val)  # a line of metrics.jsonl
    helper.finish(loss=val)                  # output.json
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any


def workdir() -> Path:
    return Path(os.environ.get("GRIDHPO_WORKDIR") or os.getcwd())


def _name(key: str, default: str) -> str:
    """The task's name for a contract file (evaluation.files, in gridhpo.json's ``paths``)."""
    paths = context().get("paths")
    name = paths.get(key) if isinstance(paths, dict) else None
    return name if isinstance(name, str) else default


def params() -> dict[str, Any]:
    name = _name("input", "input.json")
    data = json.loads((workdir() / name).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{name} is not a JSON object")
    return data


def context() -> dict[str, Any]:
    path = workdir() / "gridhpo.json"
    return json.loads(path.read_text()) if path.exists() else {}


def checkpoint_dir() -> Path:
    path = workdir() / "checkpoint"
    path.mkdir(exist_ok=True)
    return path


def report(step: float | None = None, **metrics: float) -> None:
    """Append one report; the pilot forwards it to the steering as soon as it is written."""
    line: dict[str, Any] = {"step": step, **metrics} if step is not None else dict(metrics)
    line.setdefault("time", time.time())
    with (workdir() / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")


def finish(status: int = 0, message: str = "", **metrics: float) -> None:
    """Write output.json (or the task's evaluation.files.output) atomically (a pilot never reads
    half of it)."""
    for k, v in metrics.items():
        if isinstance(v, float) and not math.isfinite(v):
            status, message = 1, f"{k} is {v}"
    out = {"status": status, "message": message, **metrics}
    tmp = workdir() / ".output.json.tmp"
    tmp.write_text(json.dumps(out))
    os.replace(tmp, workdir() / _name("output", "output.json"))
