"""Ask/tell: train inside your own script; the gridhpo service chooses the points.

    export GRIDHPO_API_TOKEN=...             # `gridhpo admin token create NAME` on the service's machine
    python train.py --server https://hpo.example.org            # submits task.yaml, then trains
    python train.py --server URL --task ID [--pilot-token T]    # or joins a task already submitted

Run it several times at once (on several machines) to evaluate points in parallel: each
process is one more pilot of the task. See docs/gateway.md.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import gridhpo


def train_one_epoch(lr: float, momentum: float, epoch: int) -> float:
    """A stand-in for real training: the loss falls with the epochs, fastest near lr=0.1."""
    speed = 1.0 / (1.0 + (math.log10(lr) + 1.0) ** 2) * (1.0 + momentum)
    return 1.0 / (1.0 + speed * (epoch + 1)) + 0.01 * (1.0 - momentum)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=os.environ.get("GRIDHPO_SERVER"), required="GRIDHPO_SERVER" not in os.environ)
    ap.add_argument("--task", type=int, default=None, help="join this task instead of submitting task.yaml")
    ap.add_argument("--pilot-token", default=None, help="the task's pilot token (default: asked from the service)")
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()

    client = gridhpo.Client(args.server, os.environ.get("GRIDHPO_API_TOKEN", "none needed with --pilot-token"))
    if args.task is None:
        task = client.create(Path(__file__).with_name("task.yaml"))
    else:
        task = client.attach(args.task, pilot_token=args.pilot_token)
    for trial in task.trials():
        with trial:  # an exception in here records the point as failed, with its message
            loss = math.inf
            for epoch in range(args.epochs):
                loss = train_one_epoch(trial.params["lr"], trial.params["momentum"], epoch)
                trial.report(epoch, loss=loss)
                if trial.should_stop():  # the task's early-stopping scheduler said so
                    break
            else:
                trial.finish(loss=loss, epochs=args.epochs)
        print(f"point {trial.number}: {trial.params} -> loss {loss:.4f}")
    task.close()
    print(f"task {task.id} has ended")


if __name__ == "__main__":
    main()
