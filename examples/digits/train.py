"""A real small model: an MLP on scikit-learn's digits (shipped with scikit-learn), trained
epoch by epoch with partial_fit. Reports the validation loss each epoch to metrics.jsonl,
saves its state to checkpoint/ each epoch and on SIGTERM, and resumes from it."""
from __future__ import annotations

import pickle
import signal
import sys
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from gridhpo.evaluation import helper

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def main() -> None:
    p = helper.params()
    epochs = int(p.get("epochs", 20))
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    classes = np.unique(y)

    ckpt = helper.checkpoint_dir() / "state.pkl"
    if ckpt.exists():
        with ckpt.open("rb") as f:
            model, start = pickle.load(f)
    else:
        model = MLPClassifier(
            hidden_layer_sizes=(int(p["width"]),) * int(p["layers"]),
            learning_rate_init=float(p["lr"]), alpha=float(p.get("alpha", 1e-4)),
            activation=str(p.get("activation", "relu")), random_state=0, batch_size=64,
        )
        start = 0

    def save(epoch: int) -> None:
        tmp = ckpt.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump((model, epoch), f)
        tmp.replace(ckpt)

    state = {"epoch": start}

    def on_term(_signum: int, _frame: object) -> None:
        save(state["epoch"])
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)
    rng = np.random.default_rng(0)
    loss = float("nan")
    for epoch in range(start + 1, epochs + 1):
        order = rng.permutation(len(X_train))
        model.partial_fit(X_train[order], y_train[order], classes=classes)
        loss = float(log_loss(y_val, model.predict_proba(X_val), labels=classes))
        acc = float(model.score(X_val, y_val))
        state["epoch"] = epoch
        save(epoch)
        helper.report(step=epoch, loss=loss, accuracy=acc)
    helper.finish(loss=loss, accuracy=float(model.score(X_val, y_val)))


if __name__ == "__main__":
    main()
