"""An evaluation that knows only the ATLAS contract (phpo/iDDS/runHPO), nothing of gridhpo.

    python atlas_eval.py POINT_FILE OUTPUT_FILE [--load TARBALL]

It reads the hyperparameter point from POINT_FILE (phpo's evaluationInput) and the training data
list from input_ds.json (evaluationTrainingData: a JSON list of file paths, each holding numbers
one per line). It fits ``w`` to the mean of the data by gradient steps, one epoch at a time
(``epoch_seconds`` of simulated work each), and after every epoch writes its whole state to
``model/state.json`` and a line to ``train.log``: the files phpo's checkPointToSave names
("model,train.log"). When they exist at start (the system put them back after an interruption)
it resumes from them; with ``--load TARBALL`` (checkPointToLoad) it extracts that tarball
itself, as phpo's evaluations do. The arithmetic of each epoch depends only on the point and the
epoch number, so a run resumed any number of times ends with the same loss, bit for bit.

At the end it writes OUTPUT_FILE ({"status": 0, "loss": ...}), the metadata file meta.json
(evaluationMeta) and the metrics tarball metrics.tgz (evaluationMetrics) of its ``mlruns/`` folder.
"""
from __future__ import annotations

import json
import os
import sys
import tarfile
import time
from pathlib import Path


def data_mean() -> float:
    values: list[float] = []
    for name in json.loads(Path("input_ds.json").read_text()):
        values += [float(v) for v in Path(name).read_text().split()]
    return sum(values) / len(values)


def main() -> int:
    point_file, output_file = sys.argv[1], sys.argv[2]
    if "--load" in sys.argv and os.path.exists(sys.argv[sys.argv.index("--load") + 1]):
        with tarfile.open(sys.argv[sys.argv.index("--load") + 1]) as tar:
            tar.extractall(".", filter="data")
    p = json.loads(Path(point_file).read_text())
    lr, epochs, pause = float(p["lr"]), int(p["epochs"]), float(p.get("epoch_seconds", 0.0))
    target = data_mean()
    state = {"w": 0.0, "epoch": 0, "resumed": 0}
    if Path("model/state.json").exists():
        state = json.loads(Path("model/state.json").read_text())
        state["resumed"] += 1
    Path("model").mkdir(exist_ok=True)
    while state["epoch"] < epochs:
        time.sleep(pause)
        for step in range(10):
            state["w"] -= lr / (1 + state["epoch"] + step / 10) * 2 * (state["w"] - target)
        state["epoch"] += 1
        tmp = Path("model/state.json.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, "model/state.json")
        with open("train.log", "a") as log:
            log.write(f"epoch {state['epoch']} w {state['w']!r}\n")
    loss = (state["w"] - target) ** 2 + 0.01 * lr
    Path("mlruns").mkdir(exist_ok=True)
    Path("mlruns/metrics.txt").write_text(f"loss {loss!r}\nw {state['w']!r}\n")
    with tarfile.open("metrics.tgz", "w:gz") as tar:
        tar.add("mlruns")
    Path("meta.json").write_text(json.dumps({"epochs": state["epoch"], "resumed": state["resumed"],
                                             "log_lines": len(Path("train.log").read_text().splitlines())}))
    Path(output_file).write_text(json.dumps({"status": 0, "loss": loss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
