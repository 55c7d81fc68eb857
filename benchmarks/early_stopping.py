"""Early stopping at equal compute on the real digits example (examples/digits/train.py).

Each strategy trains the same model, epoch by epoch, with 8 asynchronous workers, until the
compute budget (epochs summed over all points) is spent: plain random search (every point
trained to max_resource), ASHA + random, ASHA + TPE (hyperopt) and Hyperband + random. It
prints the best validation loss against compute spent (median over seeds), the compute each
strategy needed to reach the final best of random search, and writes a PNG plot.

    .venv/bin/python benchmarks/early_stopping.py [--budget 810] [--seeds 3] [--png docs/early_stopping.png]

The asynchronous workers are simulated in one process (one epoch per busy worker per tick),
so the figure measures the algorithms, not the machine; the steering runs the very same
Scheduler and Optimiser classes.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "digits"))

from train import Data, Trainer  # noqa: E402

from gridhpo.steering import optimisers, schedulers  # noqa: E402
from gridhpo.steering.schedulers import Decision  # noqa: E402
from gridhpo.steering.taskfile import parse_task  # noqa: E402

SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "layers": {"type": "int", "low": 1, "high": 3},
    "width": {"type": "int", "low": 16, "high": 128, "log": True},
    "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
    "alpha": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
}
STRATEGIES = {
    "random": ("random", None, "none"),
    "ASHA + random": ("random", None, "asha"),
    "ASHA + TPE": ("hyperopt", "tpe", "asha"),
    "Hyperband + random": ("random", None, "hyperband"),
}


def run(strategy: str, seed: int, budget: int, workers: int, max_resource: int, data: Data) -> list[tuple[int, float]]:
    backend, algorithm, scheduler = STRATEGIES[strategy]
    spec = parse_task({
        "name": "bench", "search_space": SPACE,
        "optimiser": {"backend": backend, "algorithm": algorithm, "seed": seed},
        "budget": {"max_points": 10_000, "parallel": workers},
        "early_stopping": {"scheduler": scheduler, "min_resource": 1, "max_resource": max_resource,
                           "reduction_factor": 3},
        "evaluation": {"command": "true"},
    })
    opt = optimisers.create(spec)
    sched = schedulers.create(spec)
    slots: list[tuple[int, Trainer, float] | None] = [None] * workers
    spent, best, curve = 0, float("inf"), []
    while spent < budget:
        for i in range(workers):
            if spent >= budget:
                break
            if slots[i] is None:
                [s] = opt.ask(1)
                slots[i] = (s.number, Trainer(s.params, data), float("inf"))
            number, trainer, _ = slots[i]  # type: ignore[misc]
            loss, _acc = trainer.epoch()
            spent += 1
            best = min(best, loss)
            curve.append((spent, best))
            decision = sched.report(number, float(trainer.done), loss)
            if decision is not Decision.CONTINUE or trainer.done >= max_resource:
                opt.tell(number, loss)
                slots[i] = None
            else:
                slots[i] = (number, trainer, loss)
    return curve


def reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((c for c, b in curve if b <= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=810, help="epochs summed over all points")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--max-resource", type=int, default=27)
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "early_stopping.png")
    ap.add_argument("--lr-low", type=float, default=1e-5,
                    help="lowest learning rate, as in examples/digits/task-asha.yaml (1e-4: fewer slow learners)")
    args = ap.parse_args()
    SPACE["lr"]["low"] = args.lr_low
    data = Data()
    curves: dict[str, list[list[tuple[int, float]]]] = {s: [] for s in STRATEGIES}
    t0 = time.time()
    for strategy in STRATEGIES:
        for seed in range(args.seeds):
            curves[strategy].append(run(strategy, seed, args.budget, args.workers, args.max_resource, data))
            print(f"  {strategy} seed {seed}: best {curves[strategy][-1][-1][1]:.4f} ({time.time() - t0:.0f}s)",
                  file=sys.stderr)
    target = statistics.median(c[-1][1] for c in curves["random"])
    marks = [args.budget // 9, args.budget // 3, args.budget]
    print(f"\nbest validation log-loss (median of {args.seeds} seeds) against compute (epochs), "
          f"{args.workers} workers, max {args.max_resource} epochs per point\n")
    print(f"{'strategy':<20}" + "".join(f"{f'@{m}':>10}" for m in marks)
          + f"{'epochs to reach random best':>30}{'fraction':>10}")
    for strategy, cs in curves.items():
        vals = [statistics.median(dict(c).get(m, c[-1][1]) if m <= len(c) else c[-1][1] for c in cs) for m in marks]
        hits = [reach(c, target) for c in cs]
        med = statistics.median([h if h is not None else float("inf") for h in hits])
        frac = f"{med / args.budget:.2f}" if med != float("inf") else "never"
        print(f"{strategy:<20}" + "".join(f"{v:>10.4f}" for v in vals)
              + f"{(str(int(med)) if med != float('inf') else '-'):>30}{frac:>10}")
    print(f"\nrandom search's final best (median): {target:.4f}; goal: ASHA + TPE within 1/3 of the compute")
    plot(curves, args.png, args.budget)


def plot(curves: dict[str, list[list[tuple[int, float]]]], png: Path, budget: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, cs in curves.items():
        xs = list(range(1, budget + 1))
        ys = [statistics.median(dict(c).get(x, c[-1][1]) for c in cs) for x in xs]
        ax.plot(xs, ys, label=strategy)
    ax.set_xlabel("compute spent (epochs, summed over points)")
    ax.set_ylabel("best validation log-loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"plot: {png}", file=sys.stderr)




if __name__ == "__main__":
    main()
