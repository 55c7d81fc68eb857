"""A deterministic, resumable training: linear regression by minibatch SGD, epoch by epoch.

It saves its whole state (weights, epoch, next batch) to checkpoint/ after every epoch and
when it gets SIGTERM (at the next batch boundary), and starts from checkpoint/ when the
pilot restored one there. The shuffling of epoch e comes from a generator seeded with
(seed, e), never from a running random state, so a run resumed any number of times does
the very same arithmetic as an uninterrupted one: its final loss is bit-identical.

Parameters (input.json): lr, epochs, batches (per epoch), epoch_seconds (simulated work).
Set GRIDHPO_EXAMPLE_NO_SIGTERM_SAVE=1 to model an evaluation that does not save on SIGTERM,
and GRIDHPO_EXAMPLE_REPORT_BATCHES=1 to report the progress after every batch (the benchmark
measures the work lost per interruption from it).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

stop = False


def on_sigterm(_signum: int, _frame: object) -> None:
    global stop
    stop = True


def dataset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261122)
    x = rng.normal(size=(2400, 16))
    w = rng.normal(size=16)
    y = x @ w + 0.3 * rng.normal(size=2400)
    return x[:2000], y[:2000], x[2000:], y[2000:]


def save(folder: Path, w: np.ndarray, epoch: int, batch: int) -> None:
    tmp = folder / "state.npz.tmp"
    with tmp.open("wb") as f:
        np.savez(f, w=w, epoch=epoch, batch=batch)
    os.replace(tmp, folder / "state.npz")  # a reader never sees half a state


def report(line: dict[str, object]) -> None:
    with open("metrics.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def main() -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    params = json.loads(Path("input.json").read_text())
    lr, epochs = float(params["lr"]), int(params["epochs"])
    batches, pause = int(params.get("batches", 10)), float(params.get("epoch_seconds", 0.0))
    save_on_term = os.environ.get("GRIDHPO_EXAMPLE_NO_SIGTERM_SAVE", "") in ("", "0")
    per_batch = os.environ.get("GRIDHPO_EXAMPLE_REPORT_BATCHES", "") not in ("", "0")
    ckpt = Path("checkpoint")
    ckpt.mkdir(exist_ok=True)
    x, y, xv, yv = dataset()
    w, epoch, batch = np.zeros(x.shape[1]), 0, 0
    if (ckpt / "state.npz").exists():
        with np.load(ckpt / "state.npz") as s:
            w, epoch, batch = s["w"].copy(), int(s["epoch"]), int(s["batch"])
    report({"step": epoch + batch / batches, "event": "start"})
    size = len(x) // batches
    while epoch < epochs:
        order = np.random.default_rng([7, epoch]).permutation(len(x))
        while batch < batches:
            idx = order[batch * size:(batch + 1) * size]
            w = w - lr * (2.0 / size) * (x[idx].T @ (x[idx] @ w - y[idx]))
            batch += 1
            time.sleep(pause / batches)
            if per_batch:
                report({"step": epoch + batch / batches})
            if stop:
                if save_on_term:
                    save(ckpt, w, epoch, batch)
                report({"step": epoch + batch / batches, "event": "stop"})
                return 143
        epoch, batch = epoch + 1, 0
        save(ckpt, w, epoch, 0)
        report({"step": epoch, "loss": float(np.mean((xv @ w - yv) ** 2))})
    loss = float(np.mean((xv @ w - yv) ** 2))
    Path("output.json").write_text(json.dumps({"status": 0, "loss": loss, "message": f"{epochs} epochs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
