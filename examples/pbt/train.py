"""A model worth a hyperparameter schedule, for population-based training (issue 17).

A one-hidden-layer network in plain NumPy, trained by SGD with momentum on scikit-learn's
digits. Its learning rate and L2 weight decay (``lr``, ``weight_decay`` in input.json) are
best high early and lower later, so a schedule beats any fixed value: what PBT finds.

Its checkpoint (``checkpoint/state.npz``) holds the whole training state: weights, momentum
buffers and the epoch. Hyperparameters are never taken from it, only from input.json, so that
a member which exploits another starts from the other's weights with its own new config.
Each epoch's shuffling is seeded by the epoch number, so training resumed from a checkpoint
does exactly the arithmetic of an uninterrupted run.

It trains up to the step the steering gives (gridhpo.json's ``budget.max_resource``), else to
``epochs``, reports the validation loss and accuracy every epoch, and records in every report
which state it started from (``restored_step`` and ``restored_digest``, a number derived from
the weights) and the digest of the weights it reached (``digest``), so that tests and users
can check whose weights a segment started from. ``epoch_seconds`` (default 0) adds simulated
work to each epoch.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HIDDEN = 32
BATCH = 64


@dataclass
class State:
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    v: list[np.ndarray]  # momentum buffers, one per array above
    epoch: int = 0

    @classmethod
    def fresh(cls, n_in: int, n_out: int, seed: int = 0) -> State:
        rng = np.random.default_rng(seed)
        w1 = rng.normal(0, np.sqrt(2.0 / n_in), size=(n_in, HIDDEN))
        w2 = rng.normal(0, np.sqrt(1.0 / HIDDEN), size=(HIDDEN, n_out))
        arrays = [w1, np.zeros(HIDDEN), w2, np.zeros(n_out)]
        return cls(*arrays, v=[np.zeros_like(a) for a in arrays])

    @property
    def arrays(self) -> list[np.ndarray]:
        return [self.w1, self.b1, self.w2, self.b2]

    def digest(self) -> int:
        """A number that names these weights (the first 6 bytes of their SHA-256)."""
        h = hashlib.sha256()
        for a in self.arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        return int.from_bytes(h.digest()[:6], "big")

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            np.savez(f, *self.arrays, *self.v, epoch=self.epoch)
        os.replace(tmp, path)  # a reader never sees half a state

    @classmethod
    def load(cls, path: Path) -> State:
        with np.load(path) as s:
            a = [s[f"arr_{i}"].copy() for i in range(8)]
            return cls(*a[:4], v=a[4:], epoch=int(s["epoch"]))


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    order = np.random.default_rng(20261201).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(len(x) * 0.7)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _forward(s: State, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.maximum(x @ s.w1 + s.b1, 0.0)
    z = h @ s.w2 + s.b2
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return h, p / p.sum(axis=1, keepdims=True)


def epoch(s: State, x: np.ndarray, y: np.ndarray, lr: float, weight_decay: float, momentum: float = 0.9) -> None:
    """One epoch of minibatch SGD with momentum; the shuffle depends on the epoch only."""
    order = np.random.default_rng([11, s.epoch]).permutation(len(x))
    for start in range(0, len(x), BATCH):
        idx = order[start:start + BATCH]
        xb, yb = x[idx], y[idx]
        h, p = _forward(s, xb)
        p[np.arange(len(yb)), yb] -= 1.0
        dz = p / len(yb)
        dh = (dz @ s.w2.T) * (h > 0)
        grads = [xb.T @ dh, dh.sum(axis=0), h.T @ dz, dz.sum(axis=0)]
        for i, (a, g) in enumerate(zip(s.arrays, grads, strict=True)):
            if i in (0, 2):
                g = g + weight_decay * a
            s.v[i] = momentum * s.v[i] - lr * g
            a += s.v[i]
    s.epoch += 1


def evaluate(s: State, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    _, p = _forward(s, x)
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))
    return loss, float(np.mean(p.argmax(axis=1) == y))


def schedule_of(params: dict[str, Any]) -> list[tuple[float, dict[str, float]]]:
    """A recorded schedule to replay (``schedule``: JSON of [[from step, config], ...], as
    examples/pbt/replay.py writes it), oldest first; [] without one."""
    raw = params.get("schedule")
    if not raw:
        return []
    steps = [(float(at), dict(c)) for at, c in json.loads(raw)]
    return sorted(steps, key=lambda s: s[0])


def train(params: dict[str, Any], until: int, ckpt: Path, report: Any, stop: Any = lambda: False) -> State:
    """Train from ``ckpt`` (when it holds a state) up to epoch ``until``, saving every epoch."""
    x, y, xv, yv = data()
    s = State.load(ckpt) if ckpt.exists() else State.fresh(x.shape[1], 10, int(params.get("seed", 0)))
    lr, wd = float(params["lr"]), float(params["weight_decay"])
    # what this run started from and with: the evaluation's own record, reported every epoch
    started = {"restored_step": s.epoch, "restored_digest": s.digest(), "lr": lr, "weight_decay": wd}
    pause = float(params.get("epoch_seconds", 0.0))  # simulated work, so tests can interrupt an epoch
    steps = schedule_of(params)
    while s.epoch < until and not stop():
        if steps:  # a replayed schedule: the config of the last change at or before this epoch
            lr, wd = next((c["lr"], c["weight_decay"]) for at, c in reversed(steps) if at <= s.epoch)
        epoch(s, x, y, lr, wd)
        time.sleep(pause)
        s.save(ckpt)
        loss, acc = evaluate(s, xv, yv)
        # digest: these weights, so that whoever restores them can be checked against it
        report(step=s.epoch, loss=loss, accuracy=acc, digest=s.digest(), **started)
    return s


def main() -> None:
    from gridhpo.evaluation import helper

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))  # finish the epoch, save, exit
    params = helper.params()
    budget = helper.context().get("budget") or {}
    until = int(budget.get("max_resource") or params.get("epochs", 30))
    s = train(params, until, helper.checkpoint_dir() / "state.npz", helper.report, stop=lambda: bool(stopping))
    *_, xv, yv = data()
    loss, acc = evaluate(s, xv, yv)
    helper.finish(loss=loss, accuracy=acc)


if __name__ == "__main__":
    main()
