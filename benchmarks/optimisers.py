"""Optimiser benchmark: (a) time of one ask and one tell at 10/100/300 told points on a
5-dimensional mixed space; (b) median best value over seeds after 100 evaluations at
parallelism 8 (ask 8, tell 8) on Branin, Hartmann-6, a 10-dimensional mixed function, Hartmann-3
and a shifted Rosenbrock-4,
for the main algorithm of every backend and Optuna's TPE run natively as the reference
(column ``optuna-native:tpe``; our ``optuna`` backend is a column like the others).

    python benchmarks/optimisers.py [--seeds 10] [--budget 100] [--jobs 1] [--backends random,skopt:gp]
                                    [--skip-timing] [--skip-quality]

(a) fills the history through ``restore`` with random points (what a restarted steering
does), then times single asks and tells; skopt fits its model at ask, so its tell is free.
(b) runs skopt's GP with a capped acquisition optimisation (``SKOPT_GP``) to stay affordable.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from gridhpo.errors import GridHPOError
from gridhpo.steering import optimisers
from gridhpo.steering.optimisers import Trial
from gridhpo.steering.space import Categorical, Fixed, Numeric, SearchSpace, parse_space

warnings.filterwarnings("ignore")

Backend = tuple[str, str | None, dict[str, Any]]
Objective = Callable[[dict[str, Any]], float]

TIMING_BACKENDS: list[Backend] = [
    ("random", None, {}), ("grid", None, {}), ("hyperopt", "tpe", {}), ("hyperopt", "anneal", {}),
    ("skopt", "gp", {}), ("skopt", "rf", {}), ("nevergrad", None, {}), ("nevergrad", "TwoPointsDE", {}),
    ("optuna", "tpe", {}), ("optuna", "cmaes", {}), ("optuna", "qmc", {}),
]
# skopt refits its GP and optimises the acquisition once per point of a batch (its constant
# liar); on continuous spaces the default optimisation (10,000 samples, then 5 L-BFGS runs per
# acquisition function) was half of that cost: 2,000 samples without L-BFGS keep (b) affordable
SKOPT_GP: dict[str, Any] = {"acq_optimizer": "sampling", "acq_optimizer_kwargs": {"n_points": 2000}}
QUALITY_BACKENDS: list[Backend] = [
    ("random", None, {}), ("hyperopt", "tpe", {}), ("skopt", "gp", SKOPT_GP), ("nevergrad", None, {}),
]
PARALLEL = 8
# Optuna's own TPE driven directly (not through our backend): the reference column of (b)
REFERENCE = "optuna-native:tpe"

MIXED5 = {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
          "n": {"type": "int", "low": 1, "high": 64, "log": True},
          "d": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
          "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu"]},
          "x": {"type": "float", "low": -1.0, "high": 1.0}}


def mixed5(p: dict[str, Any]) -> float:
    return float((math.log10(p["lr"]) + 2) ** 2 + (math.log2(p["n"]) - 3) ** 2 / 4 + (p["d"] - 0.2) ** 2
                 + {"relu": 0.0, "tanh": 0.3, "gelu": 0.1}[p["act"]] + p["x"] ** 2)


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10)


_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
      [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]


def hartmann6(p: dict[str, Any]) -> float:
    x = [p[f"x{i}"] for i in range(6)]
    return -sum(a * math.exp(-sum(_A[i][j] * (x[j] - _P[i][j] * 1e-4) ** 2 for j in range(6)))
                for i, a in enumerate([1.0, 1.2, 3.0, 3.2]))


_A3 = [[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]]
_P3 = [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]


def hartmann3(p: dict[str, Any]) -> float:
    """Hartmann-3 on [0, 1]^3, minimum -3.86278 at (0.1146, 0.5556, 0.8525)."""
    x = [p[f"x{i}"] for i in range(3)]
    return -sum(a * math.exp(-sum(_A3[i][j] * (x[j] - _P3[i][j] * 1e-4) ** 2 for j in range(3)))
                for i, a in enumerate([1.0, 1.2, 3.0, 3.2]))


# Rosenbrock's valley moved off the centre and the diagonal of [-2, 2]^4 (minimum 0 at the shift)
ROSENBROCK_SHIFT = (0.3, -0.6, 0.9, -0.2)


def rosenbrock4(p: dict[str, Any]) -> float:
    z = [p[f"x{i}"] - s + 1.0 for i, s in enumerate(ROSENBROCK_SHIFT)]
    return float(sum(100 * (z[i + 1] - z[i] ** 2) ** 2 + (1 - z[i]) ** 2 for i in range(3)))


MIXED10 = {**{f"x{i}": {"type": "float", "low": -2.0, "high": 2.0} for i in range(4)},
           "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
           "k": {"type": "int", "low": 1, "high": 20},
           "m": {"type": "int", "low": 1, "high": 1000, "log": True},
           "s": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.1},
           "c1": {"type": "categorical", "choices": ["a", "b", "c", "d"]},
           "c2": {"type": "categorical", "choices": [True, False]}}


def mixed10(p: dict[str, Any]) -> float:
    return float(sum((p[f"x{i}"] - 0.5 * i + 0.5) ** 2 for i in range(4)) + (math.log10(p["lr"]) + 3) ** 2 / 4
                 + (p["k"] - 7) ** 2 / 20 + (math.log10(p["m"]) - 2) ** 2 + (p["s"] - 0.3) ** 2
                 + {"a": 0.5, "b": 0.0, "c": 0.3, "d": 0.8}[p["c1"]] + (0.0 if p["c2"] else 0.4))


PROBLEMS: dict[str, tuple[dict[str, Any], Objective]] = {
    "Branin (min 0.398)": ({"x1": {"type": "float", "low": -5.0, "high": 10.0},
                            "x2": {"type": "float", "low": 0.0, "high": 15.0}}, branin),
    "Hartmann-6 (min -3.322)": ({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(6)}, hartmann6),
    "mixed-10 (min 0)": (MIXED10, mixed10),
    "Hartmann-3 (min -3.863)": ({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(3)}, hartmann3),
    "Rosenbrock-4 (min 0)": ({f"x{i}": {"type": "float", "low": -2.0, "high": 2.0} for i in range(4)}, rosenbrock4),
}


def single_threaded() -> None:
    """One BLAS thread per process: OpenBLAS's default of one thread per core made skopt's GP
    fits 5 to 10 times slower on this 2-core machine shared with other work (oversubscription)."""
    # numpy and scipy each bring their own OpenBLAS, scikit-learn an OpenMP: load them all so
    # that the limit reaches every one
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    import sklearn  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def make(backend: Backend, space: SearchSpace, seed: int, budget: int,
         parallel: int = PARALLEL, modes: tuple[str, ...] = ("min",)) -> optimisers.Optimiser:
    name, algorithm, options = backend
    return optimisers.get(name)(space, seed=seed, algorithm=algorithm, options=options,
                                max_points=budget, parallel=parallel, modes=modes)


def drive(opt: optimisers.Optimiser, f: Callable[[dict[str, Any]], Any], points: int, parallel: int,
          asynchronous: bool) -> tuple[list[tuple[dict[str, Any], Any]], float]:
    """(every point told with its value, in order; the optimiser's CPU seconds) of ``opt`` run
    alone on ``f`` up to ``points``: asked ``parallel`` at a time and all told before the next
    batch or, ``asynchronous``, ``parallel`` in flight and one asked as each result comes, oldest
    first, as the steering does with pilots that take equally long."""
    t0 = time.process_time()
    in_flight = deque(opt.ask(min(parallel, points)))
    spent = time.process_time() - t0
    told: list[tuple[dict[str, Any], Any]] = []
    while in_flight:
        s = in_flight.popleft()
        params = dict(s.params)
        v = f(params)
        told.append((params, v))
        t0 = time.process_time()
        opt.tell(s.number, v)
        left = points - len(opt.trials)
        if left > 0 and (asynchronous or not in_flight):
            in_flight.extend(opt.ask(1 if asynchronous else min(parallel, left)))
        spent += time.process_time() - t0
    return told, spent


def label(backend: Backend) -> str:
    return f"{backend[0]}:{backend[1]}" if backend[1] else backend[0]


# ---------------------------------------------------------------------- (a) ask / tell time

def history(space: SearchSpace, f: Objective, n: int, seed: int) -> list[Trial]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = space.sample(rng)
        out.append(Trial(i, p, "done", f(p)))
    return out


def time_one(backend: Backend, n: int, reps: int) -> tuple[float, float] | str:
    """Median seconds of one ask and one tell after ``n`` random points told through restore,
    or the error that stopped the backend (the table must still show the other cells)."""
    space = parse_space(MIXED5)
    opt = make(backend, space, 0, 1000)
    opt.restore(history(space, mixed5, n, 1))
    asks, tells = [], []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        try:
            s = opt.ask(1)[0]
        except GridHPOError as exc:
            return str(exc)
        t1 = time.perf_counter()
        opt.tell(s.number, mixed5(s.params))
        t2 = time.perf_counter()
        if i:  # the first round pays the library's imports and lazy set-up
            asks.append(t1 - t0)
            tells.append(t2 - t1)
    return statistics.median(asks), statistics.median(tells)


def timing(backends: list[Backend], sizes: tuple[int, ...] = (10, 100, 300), reps: int = 5) -> None:
    print(f"\n(a) median time of one ask / one tell (ms, median of {reps}), 5-d mixed space, by points told")
    print(f"{'backend':<22}" + "".join(f"{f'ask@{n}':>11}{f'tell@{n}':>11}" for n in sizes))
    errors = []
    for backend in backends:
        row = f"{label(backend):<22}"
        for n in sizes:
            got = time_one(backend, n, reps)
            if isinstance(got, str):
                row += f"{'error':>11}{'error':>11}"
                errors.append(f"{label(backend)} at {n} told: {got}")
            else:
                row += f"{got[0] * 1e3:>11.1f}{got[1] * 1e3:>11.2f}"
        print(row, flush=True)
    for e in errors:
        print("error:", e)


# ---------------------------------------------------------------------- (b) best value reached

def run_ours(backend: Backend, problem: str, seed: int, budget: int) -> float:
    raw, f = PROBLEMS[problem]
    opt = make(backend, parse_space(raw), seed, budget)
    best = math.inf
    while len(opt.trials) < budget:
        batch = opt.ask(min(PARALLEL, budget - len(opt.trials)))
        for s in batch:
            v = f(s.params)
            best = min(best, v)
            opt.tell(s.number, v)
    return best


def run_optuna(problem: str, seed: int, budget: int) -> float:
    """Optuna's TPE (default settings, constant liar for the points in flight), same batches.
    Optuna samples a trial's parameters at its first ``suggest``, not at ``ask``: the whole batch
    is suggested before any of it is told, or each point would see the results of the batch's
    earlier points (a sequential search, not parallelism 8)."""
    raw, f = PROBLEMS[problem]
    return min(optuna_native(parse_space(raw), f, seed, budget))


def optuna_native(space: SearchSpace, f: Objective, seed: int, budget: int, parallel: int = PARALLEL) -> list[float]:
    """The values, in order, of Optuna's own TPE asked in batches of ``parallel`` (see ``run_optuna``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    values: list[float] = []
    while len(study.trials) < budget:
        trials = [study.ask() for _ in range(min(parallel, budget - len(study.trials)))]
        points = [native_point(space, t) for t in trials]
        for t, point in zip(trials, points, strict=True):
            v = f(point)
            values.append(v)
            study.tell(t, v)
    return values


def native_point(space: SearchSpace, t: Any) -> dict[str, Any]:
    point: dict[str, Any] = {}
    for p in space:
        if isinstance(p, Fixed):
            point[p.name] = p.value
        elif isinstance(p, Categorical):
            point[p.name] = p.choices[t.suggest_categorical(p.name, list(range(len(p.choices))))]
        elif isinstance(p, Numeric) and p.is_int:
            point[p.name] = t.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        elif isinstance(p, Numeric):
            point[p.name] = t.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
    return point


def run(job: tuple[str, Backend | None, int, int]) -> tuple[float, float, str]:
    """(best value, seconds, error) of one seed; ``backend`` None is Optuna's TPE. A backend
    error makes the value NaN and is reported under the table."""
    problem, backend, seed, budget = job
    t0 = time.perf_counter()
    try:
        best = run_optuna(problem, seed, budget) if backend is None else run_ours(backend, problem, seed, budget)
    except GridHPOError as exc:
        return math.nan, time.perf_counter() - t0, str(exc)
    return best, time.perf_counter() - t0, ""


def parse_backend(text: str, uncapped: bool) -> Backend:
    """``backend[:algorithm][/option=value...]`` as in the tables; skopt's GP keeps its capped
    options unless ``uncapped``."""
    text, _, extra = text.partition("/")
    name, _, algorithm = text.partition(":")
    capped = (name, algorithm) == ("skopt", "gp") and not uncapped
    options = dict(SKOPT_GP) if capped else {}
    for item in filter(None, extra.split("/")):  # backend:algorithm/key=value/key=value
        key, _, value = item.partition("=")
        options[key] = _option_value(value)
    return name, algorithm or None, options


def _option_value(text: str) -> Any:
    """An option's value as written on the command line: an int, a float, true/false or text."""
    if text.isdigit():
        return int(text)
    try:
        return float(text)
    except ValueError:
        return {"true": True, "false": False}.get(text, text)


def quality(seeds: int, budget: int, jobs: int, backends: list[Backend], problems: list[str]) -> None:
    try:
        import optuna  # noqa: F401
        have_optuna = True
    except ImportError:
        have_optuna = False
        print("\noptuna is not installed: the reference column is missing (pip install optuna)")
    columns: list[Backend | None] = [*backends, *([None] if have_optuna else [])]
    names = [label(b) if b else REFERENCE for b in columns]
    print(f"\n(b) median best value over {seeds} seeds after {budget} evaluations, parallelism {PARALLEL}"
          f" (seconds per run in brackets)")
    for backend in backends:
        print(f"{label(backend)} options: {backend[2] or 'defaults'}")
    print(f"{'problem':<25}" + "".join(f"{c:>22}" for c in names))
    verdicts, errors = [], []
    with ProcessPoolExecutor(jobs, initializer=single_threaded) as pool:
        for problem in problems:
            work = [(problem, b, s, budget) for b in columns for s in range(seeds)]
            results = list(pool.map(run, work))
            medians: dict[str, float] = {}
            row = f"{problem:<25}"
            for i, name in enumerate(names):
                got = results[i * seeds:(i + 1) * seeds]
                secs = statistics.median(t for _, t, _ in got)
                failed = [e for _, _, e in got if e]
                if failed:
                    row += f"{f'{len(failed)}/{seeds} failed':>14} ({secs:>5.1f})"
                    errors.append(f"{problem}, {name}: {failed[0]}")
                    continue
                medians[name] = statistics.median(v for v, _, _ in got)
                row += f"{medians[name]:>14.4f} ({secs:>5.1f})"
            print(row, flush=True)
            if have_optuna and REFERENCE in medians:
                ours = {k: v for k, v in medians.items() if k != REFERENCE}
                best = min(ours, key=lambda k: ours[k])
                ref = medians[REFERENCE]
                word = "at least as good as" if ours[best] <= ref else "WORSE than"
                verdicts.append(f"{problem}: best of ours {best} {ours[best]:.4f} is {word} {REFERENCE} {ref:.4f}")
    for e in errors:
        print("error:", e)
    for v in verdicts:
        print(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1, help="processes for (b); (a) always runs alone")
    ap.add_argument("--backends", default=",".join(label(b) for b in QUALITY_BACKENDS),
                    help="columns of (b), comma-separated backend[:algorithm]; optuna-native:tpe is always added")
    ap.add_argument("--timing-backends", default=",".join(label(b) for b in TIMING_BACKENDS),
                    help="rows of (a), comma-separated backend[:algorithm]")
    ap.add_argument("--uncapped", action="store_true", help="skopt:gp with skopt's own acquisition optimisation")
    ap.add_argument("--problems", default="", help="only the problems of (b) whose name contains this")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    single_threaded()
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, one BLAS thread per process")
    if not args.skip_timing:
        timing([parse_backend(b, True) for b in args.timing_backends.split(",")])
    if not args.skip_quality:
        quality(args.seeds, args.budget, args.jobs, [parse_backend(b, args.uncapped) for b in args.backends.split(",")],
                [p for p in PROBLEMS if args.problems in p])


if __name__ == "__main__":
    main()
