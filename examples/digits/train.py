"""A real small model: an MLP on scikit-learn's digits (shipped with scikit-learn), trained
epoch by epoch with partial_fit. Reports the validation loss each epoch to metrics.jsonl,
saves its state to checkpoint/ each epoch and on SIGTERM, and resumes from it.

The model code is importable (``Trainer``) so that benchmarks/early_stopping.py trains the
very same model."""
from __future__ import annotations

import pickle
import signal
import sys
import warnings
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore", category=ConvergenceWarning)


class Data:
    def __init__(self) -> None:
        X, y = load_digits(return_X_y=True)
        X_train, X_val, self.y_train, self.y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
        scaler = StandardScaler().fit(X_train)
        self.X_train, self.X_val = scaler.transform(X_train), scaler.transform(X_val)
        self.classes = np.unique(y)


class Trainer:
    """One point's model; ``epoch()`` trains one more epoch and returns (val loss, accuracy)."""

    def __init__(self, p: dict[str, Any], data: Data) -> None:
        self.data = data
        self.done = 0
        self.model = MLPClassifier(
            hidden_layer_sizes=(int(p["width"]),) * int(p["layers"]),
            learning_rate_init=float(p["lr"]), alpha=float(p.get("alpha", 1e-4)),
            activation=str(p.get("activation", "relu")), random_state=0, batch_size=64,
        )

    def epoch(self) -> tuple[float, float]:
        d = self.data
        order = np.random.default_rng(self.done).permutation(len(d.X_train))
        self.model.partial_fit(d.X_train[order], d.y_train[order], classes=d.classes)
        self.done += 1
        proba = self.model.predict_proba(d.X_val)
        return float(log_loss(d.y_val, proba, labels=d.classes)), float(self.model.score(d.X_val, d.y_val))


def main() -> None:
    from gridhpo.evaluation import helper

    p = helper.params()
    # with early stopping the steering sets the resource to reach (gridhpo.json "budget")
    epochs = int(helper.context().get("budget", {}).get("max_resource") or p.get("epochs", 20))
    ckpt = helper.checkpoint_dir() / "state.pkl"
    if ckpt.exists():
        with ckpt.open("rb") as f:
            trainer: Trainer = pickle.load(f)
    else:
        trainer = Trainer(p, Data())

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(trainer, f)
        tmp.replace(ckpt)

    def on_term(_signum: int, _frame: object) -> None:
        save()
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)
    loss, acc = float("nan"), float("nan")
    while trainer.done < epochs:
        loss, acc = trainer.epoch()
        save()
        helper.report(step=trainer.done, loss=loss, accuracy=acc)
    helper.finish(loss=loss, accuracy=acc)


if __name__ == "__main__":
    main()
