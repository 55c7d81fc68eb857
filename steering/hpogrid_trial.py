"""One hpogrid trial as a gridhpo evaluation: the model of ``model_config`` run on input.json.

This file is the evaluation command of a task made from an hpogrid project (steering/hpogrid.py
puts its text in a ``python3 - ... <<'END'`` here-document), so it uses the standard library
only and runs in any image with a Python 3: the project's own image (hpogrid's grid container)
has no gridhpo.

    python3 - SCRIPT MODEL ITERATIONS METRIC PARAM_JSON

SCRIPT is ``model_config.script`` (a path below $GRIDHPO_TASK_DIR, the project's scripts
folder), MODEL the function or class in it, ITERATIONS ``hpo_config.stop.training_iteration``,
PARAM_JSON ``model_config.param``. As in hpogrid, the model's ``config`` is ``param`` updated
with the point's hyperparameters. A function ``model(config, reporter)`` reports with
``reporter(metric=value, ...)``: each report is one training iteration, and the trial ends at
ITERATIONS reports, as Ray Tune's ``stop`` criterion ends it. A class (hpogrid's CustomModel,
a Ray Tune Trainable) is built with ``config`` and its ``train()`` called ITERATIONS times.

Each report is a metrics.jsonl line ``{"training_iteration": i, ...}`` (what early stopping
judges); the last one, with ``"status": 0``, is output.json.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any


class _Enough(Exception):
    """Raised from the reporter once the trial has its iterations (Ray Tune stops it the same way)."""


class _Trial:
    def __init__(self, iterations: int) -> None:
        self.iterations = iterations
        self.reports: list[dict[str, Any]] = []

    def report(self, **values: Any) -> None:
        line = {"training_iteration": len(self.reports) + 1, **values}
        self.reports.append(line)
        with open("metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        if len(self.reports) >= self.iterations:
            raise _Enough


def _load(script: str, model: str) -> Any:
    path = Path(os.environ.get("GRIDHPO_TASK_DIR", ".")) / script
    sys.path.insert(0, str(path.parent))  # the script's own imports, as when hpogrid runs it
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        sys.exit(f"hpogrid trial: cannot load model_config.script {script!r} ({path})")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, model):
        sys.exit(f"hpogrid trial: {script} has no {model!r} (model_config.model)")
    return getattr(module, model)


def run(script: str, model: str, iterations: int, metric: str, param: dict[str, Any]) -> dict[str, Any]:
    with open("input.json", encoding="utf-8") as f:
        config = {**param, **json.load(f)}
    target: Any = _load(script, model)
    trial = _Trial(iterations)
    try:
        if inspect.isclass(target):
            make: Any = target  # a Ray Tune Trainable takes its config as a keyword
            trainable = make(config=config)
            while True:
                trial.report(**trainable.train())
        else:
            target(config, trial.report)
    except _Enough:
        pass
    if not trial.reports:
        sys.exit(f"hpogrid trial: {model} reported nothing (call reporter({metric}=...))")
    last = trial.reports[-1]
    if metric not in last:
        sys.exit(f"hpogrid trial: {model} reported {sorted(last)}, not the metric {metric!r} (hpo_config.metric)")
    return {"status": 0, **last}


def main() -> None:
    script, model, iterations, metric, param = sys.argv[1:6]
    result = run(script, model, int(iterations), metric, json.loads(param))
    with open("output.json", "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
