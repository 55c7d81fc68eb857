"""Optimiser benchmark: (a) time of one ask and one tell at 10/100/300 told points on a
5-dimensional mixed space; (b) median best value over seeds after 100 evaluations at
parallelism 8 (ask 8, tell 8) on Branin, Hartmann-6 and a 10-dimensional mixed function,
for every backend and Optuna's TPE as the reference (``pip install optuna``; only here).

    python benchmarks/optimisers.py [--seeds 10] [--budget 100] [--skip-timing]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from gridhpo.steering import optimisers
from gridhpo.steering.space import Categorical, Numeric, SearchSpace, parse_space

warnings.filterwarnings("ignore")
BACKENDS = [("random", None), ("hyperopt", "tpe"), ("hyperopt", "anneal"), ("skopt", "gp"), ("skopt", "rf"),
            ("nevergrad", None), ("nevergrad", "TwoPointsDE")]

MIXED5 = {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
          "n": {"type": "int", "low": 1, "high": 64, "log": True},
          "d": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
          "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu"]},
          "x": {"type": "float", "low": -1.0, "high": 1.0}}


def mixed5(p: dict[str, Any]) -> float:
    return (math.log10(p["lr"]) + 2) ** 2 + (math.log2(p["n"]) - 3) ** 2 / 4 + (p["d"] - 0.2) ** 2 \
        + {"relu": 0.0, "tanh": 0.3, "gelu": 0.1}[p["act"]] + p["x"] ** 2


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
      [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]


def hartmann6(p: dict[str, Any]) -> float:
    x = [p[f"x{i}"] for i in range(6)]
    return -sum(a * math.exp(-sum(_A[i][j] * (x[j] - _P[i][j] * 1e-4) ** 2 for j in range(6)))
                for i, a in enumerate([1.0, 1.2, 3.0, 3.2]))


MIXED10 = {**{f"x{i}": {"type": "float", "low": -2.0, "high": 2.0} for i in range(4)},
           "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
           "k": {"type": "int", "low": 1, "high": 20},
           "m": {"type": "int", "low": 1, "high": 1000, "log": True},
           "s": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.1},
           "c1": {"type": "categorical", "choices": ["a", "b", "c", "d"]},
           "c2": {"type": "categorical", "choices": [True, False]}}


def mixed10(p: dict[str, Any]) -> float:
    return sum((p[f"x{i}"] - 0.5 * i + 0.5) ** 2 for i in range(4)) + (math.log10(p["lr"]) + 3) ** 2 / 4 \
        + (p["k"] - 7) ** 2 / 20 + (math.log10(p["m"]) - 2) ** 2 + (p["s"] - 0.3) ** 2 \
        + {"a": 0.5, "b": 0.0, "c": 0.3, "d": 0.8}[p["c1"]] + (0.0 if p["c2"] else 0.4)


PROBLEMS: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], float]]] = [
    ("Branin (min 0.398)", {"x1": {"type": "float", "low": -5.0, "high": 10.0},
                            "x2": {"type": "float", "low": 0.0, "high": 15.0}}, branin),
    ("Hartmann-6 (min -3.322)", {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(6)}, hartmann6),
    ("mixed-10 (min 0)", MIXED10, mixed10),
]


def make(backend: str, algorithm: str | None, space: SearchSpace, seed: int, budget: int) -> Any:
    return optimisers.get(backend)(space, seed=seed, algorithm=algorithm, max_points=budget, parallel=8)


def label(backend: str, algorithm: str | None) -> str:
    return f"{backend}:{algorithm}" if algorithm else backend


def timing(sizes: tuple[int, ...] = (10, 100, 300), reps: int = 5) -> None:
    space = parse_space(MIXED5)
    print("\n(a) median time of one ask / one tell (ms), 5-d mixed space, by points told")
    print(f"{'backend':<22}" + "".join(f"{f'ask@{n}':>12}{f'tell@{n}':>12}" for n in sizes))
    for backend, algorithm in BACKENDS:
        row = f"{label(backend, algorithm):<22}"
        for n in sizes:
            opt = make(backend, algorithm, space, 0, 10_000)
            while len(opt.trials) < n:
                for s in opt.ask(min(50, n - len(opt.trials))):
                    opt.tell(s.number, mixed5(s.params))
            asks, tells = [], []
            for _ in range(reps):
                t0 = time.perf_counter()
                s = opt.ask(1)[0]
                t1 = time.perf_counter()
                opt.tell(s.number, mixed5(s.params))
                t2 = time.perf_counter()
                asks.append(t1 - t0)
                tells.append(t2 - t1)
            row += f"{statistics.median(asks) * 1e3:>12.1f}{statistics.median(tells) * 1e3:>12.2f}"
        print(row, flush=True)


def run_ours(backend: str, algorithm: str | None, raw: dict[str, Any], f: Callable[..., float],
             seed: int, budget: int) -> float:
    opt = make(backend, algorithm, parse_space(raw), seed, budget)
    best = math.inf
    while len(opt.trials) < budget:
        batch = opt.ask(min(8, budget - len(opt.trials)))
        for s in batch:
            v = f(s.params)
            best = min(best, v)
            opt.tell(s.number, v)
    return best


def run_optuna(raw: dict[str, Any], f: Callable[..., float], seed: int, budget: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(raw)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    best = math.inf
    while len(study.trials) < budget:
        trials = [study.ask() for _ in range(min(8, budget - len(study.trials)))]
        for t in trials:
            point: dict[str, Any] = {}
            for p in space:
                if isinstance(p, Categorical):
                    point[p.name] = p.choices[t.suggest_categorical(p.name, list(range(len(p.choices))))]
                elif isinstance(p, Numeric) and p.is_int:
                    point[p.name] = t.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
                elif isinstance(p, Numeric):
                    point[p.name] = t.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
            v = f(point)
            best = min(best, v)
            study.tell(t, v)
    return best


def quality(seeds: int, budget: int) -> None:
    try:
        import optuna  # noqa: F401
        have_optuna = True
    except ImportError:
        have_optuna = False
        print("\noptuna is not installed: the reference column is missing (pip install optuna)")
    cols = [label(b, a) for b, a in BACKENDS] + (["optuna:tpe"] if have_optuna else [])
    print(f"\n(b) median best value over {seeds} seeds after {budget} evaluations, parallelism 8")
    print(f"{'problem':<26}" + "".join(f"{c:>18}" for c in cols))
    for name, raw, f in PROBLEMS:
        row = f"{name:<26}"
        for backend, algorithm in BACKENDS:
            bests = [run_ours(backend, algorithm, raw, f, s, budget) for s in range(seeds)]
            row += f"{statistics.median(bests):>18.4f}"
        if have_optuna:
            row += f"{statistics.median(run_optuna(raw, f, s, budget) for s in range(seeds)):>18.4f}"
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    if not args.skip_timing:
        timing()
    if not args.skip_quality:
        quality(args.seeds, args.budget)


if __name__ == "__main__":
    main()
