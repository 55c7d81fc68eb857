"""The 2-objective rows of ``benchmarks/quality.py``: median hypervolume (higher is better) over
seeds after N points at parallelism 8, through the real steering, beside Optuna's own NSGA-II
and TPE run natively (multi-objective studies asked in batches of 8) and random search (the
floor: a single-objective random task, its points judged on both objectives afterwards).

Problems, both objectives minimised:

- ``ZDT1-6``: ZDT1 on 6 variables in [0, 1] (Zitzler, Deb and Thiele 2000): f1 = x0,
  g = 1 + 9 * mean(x1..x5), f2 = g * (1 - sqrt(f1 / g)). Its front is f2 = 1 - sqrt(f1).
- ``ZDT1-mixed``: the same on 4 float variables x0..x3, plus a categorical ``kind`` (a, b, c, d)
  and an int ``layers`` (1..8) that raise g: g = 1 + 9 * mean(x1..x3) + {a: 0, b: 0.5, c: 1, d: 2}[kind]
  + |layers - 3| / 2. Its front is ZDT1's (kind a, 3 layers, x1..x3 at 0): a search has to
  find the categorical and the int as well as the floats, as in a network's tuning.

With ``quality.py --direct [--asynchronous]`` our columns call the optimiser alone, as the
single-objective rows do; a column ``optuna-native-async:tpe`` runs Optuna's own study with 8 in
flight and one asked per result (the steering's schedule), beside the batch-asked reference.
Every column is judged against Optuna's own TPE by a one-sided Mann-Whitney U test over the seeds
(``benchmarks/_significance.py``).

Against the reference point (1.1, 11) the true front's hypervolume is 11.7667 on both, the
most any run can reach. Every column's hypervolume is computed here from the points'
parameters (the objective evaluated again), by the same function (steering/pareto.py).
"""
from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

from gridhpo.steering.pareto import front, hypervolume

ZDT1_SPACE: dict[str, Any] = {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(6)}
MIXED_SPACE: dict[str, Any] = {**{f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(4)},
                               "kind": {"type": "categorical", "choices": ["a", "b", "c", "d"]},
                               "layers": {"type": "int", "low": 1, "high": 8}}
KIND = {"a": 0.0, "b": 0.5, "c": 1.0, "d": 2.0}
REFERENCE = (1.1, 11.0)
BEST = 10.0 + 2.0 / 3.0 + 1.1  # the area the true front dominates up to REFERENCE
NATIVE = ("optuna-native:nsga2", "optuna-native:tpe")
# a column of Optuna's own study run as the steering runs ours (one ask per result): not a
# reference, the schedule's own effect (docs/optimisers.md, "Multi-objective search")
NATIVE_ASYNC = "optuna-native-async:"
COLUMNS = "random,optuna:tpe,optuna:nsga2,nevergrad,auto"


def zdt1_values(p: dict[str, Any]) -> tuple[float, float]:
    x = [float(p[f"x{i}"]) for i in range(6)]
    g = 1.0 + 9.0 * sum(x[1:]) / 5
    return x[0], g * (1.0 - math.sqrt(x[0] / g))


def mixed_values(p: dict[str, Any]) -> tuple[float, float]:
    x = [float(p[f"x{i}"]) for i in range(4)]
    g = 1.0 + 9.0 * sum(x[1:]) / 3 + KIND[str(p["kind"])] + abs(int(p["layers"]) - 3) / 2
    return x[0], g * (1.0 - math.sqrt(x[0] / g))


PROBLEMS: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], tuple[float, float]]]] = {
    "ZDT1-6": (ZDT1_SPACE, zdt1_values), "ZDT1-mixed": (MIXED_SPACE, mixed_values)}


def zdt1(**params: Any) -> dict[str, float]:
    """What the pilots call (``evaluation: {python: multi_objective:zdt1}``): the fixed
    parameter ``problem`` names the problem (ZDT1-6 without it)."""
    f1, f2 = PROBLEMS[str(params.get("problem", "ZDT1-6"))][1](params)
    return {"f1": f1, "f2": f2}


def hv_of(problem: str, points: list[dict[str, Any]]) -> float:
    vectors = [PROBLEMS[problem][1](p) for p in points]
    return hypervolume([vectors[i] for i in front(vectors)], REFERENCE)


def through_steering(problem: str, column: str, seed: int, points: int, pilots: int,
                     parallel: int) -> tuple[float, float]:
    """(hypervolume, steering CPU seconds per point) of one task run by ``gridhpo run``'s code."""
    from benchmarks._setups import run_embedded
    from benchmarks.quality import HERE
    from gridhpo.steering.taskfile import parse_task

    name, _, algorithm = column.partition(":")
    optimiser: dict[str, Any] = {"backend": name, "seed": seed, **({"algorithm": algorithm} if algorithm else {})}
    # random search takes one objective: its points do not depend on the values anyway
    objective: Any = {"metric": "f1"} if name == "random" else [{"metric": "f1"}, {"metric": "f2"}]
    space = {**PROBLEMS[problem][0], "problem": {"type": "fixed", "value": problem}}
    spec = parse_task({"name": f"mo-{uuid.uuid4().hex[:8]}", "search_space": space, "objective": objective,
                       "optimiser": optimiser, "budget": {"max_points": points, "parallel": parallel},
                       "evaluation": {"python": "multi_objective:zdt1"}}, base_dir=HERE)
    done, cpu = run_embedded(spec, pilots)
    return hv_of(problem, [dict(p.params) for p in done]), cpu / points


def native(problem: str, column: str, seed: int, points: int, parallel: int) -> tuple[float, float]:
    """Optuna's own multi-objective study (NSGA-II or TPE) asked in batches of ``parallel`` or, for
    an ``optuna-native-async:`` column, with ``parallel`` in flight and one asked per result."""
    import time
    from collections import deque

    import optuna

    from benchmarks.optimisers import native_point
    from gridhpo.steering.space import parse_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(PROBLEMS[problem][0])
    t0 = time.process_time()
    sampler = (optuna.samplers.NSGAIISampler(seed=seed) if column.endswith("nsga2")
               else optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)

    def ask(n: int) -> list[tuple[Any, dict[str, Any]]]:
        trials = [study.ask() for _ in range(min(n, points - len(study.trials)))]
        return [(t, native_point(space, t)) for t in trials]  # the whole batch before any result

    asynchronous = column.startswith(NATIVE_ASYNC)
    done: list[dict[str, Any]] = []
    in_flight = deque(ask(parallel))
    while in_flight:
        t, p = in_flight.popleft()
        done.append(p)
        study.tell(t, list(PROBLEMS[problem][1](p)))
        if asynchronous or not in_flight:
            in_flight.extend(ask(1 if asynchronous else parallel))
    return hv_of(problem, done), (time.process_time() - t0) / points


def direct(problem: str, column: str, seed: int, points: int, parallel: int,
           asynchronous: bool) -> tuple[float, float]:
    """(hypervolume, optimiser seconds per point) of our backend alone (``benchmarks.optimisers.drive``)."""
    from benchmarks.optimisers import drive, make, parse_backend
    from gridhpo.steering.space import parse_space

    opt = make(parse_backend(column, False), parse_space(PROBLEMS[problem][0]), seed, points, parallel,
               modes=("min", "min"))
    told, spent = drive(opt, lambda p: list(PROBLEMS[problem][1](p)), points, parallel, asynchronous)
    return hv_of(problem, [p for p, _ in told]), spent / points


def run(job: tuple[str, str, int, int, int, int, str]) -> tuple[float, float, str]:
    """(hypervolume, seconds per point, error) of one seed of one column; ``how`` as quality.py's."""
    problem, column, seed, points, parallel, pilots, how = job
    from gridhpo.errors import GridHPOError

    try:
        if column in NATIVE or column.startswith(NATIVE_ASYNC):
            hv, per_point = native(problem, column, seed, points, parallel)
        elif how in ("direct", "async"):
            hv, per_point = direct(problem, column, seed, points, parallel, how == "async")
        else:
            hv, per_point = through_steering(problem, column, seed, points, pilots, parallel)
    except GridHPOError as exc:
        return math.nan, 0.0, str(exc)
    return hv, per_point, ""


def schedule(how: str, pilots: int) -> str:
    """How a table's columns ran, for its title (``how``: steering, direct or async)."""
    return {"direct": "optimiser called directly (--direct)",
            "async": "optimiser called directly, one ask per result (--direct --asynchronous)",
            "steering": f"real steering, embedded, {pilots} pilots"}[how]


def table(problems: list[str], columns: list[str], seeds: int, points: int, parallel: int, pilots: int,
          jobs: int, first_seed: int = 0, how: str = "steering") -> None:
    import statistics
    from concurrent.futures import ProcessPoolExecutor

    from benchmarks._significance import SIGNIFICANT, significance, worse_p
    from benchmarks.optimisers import single_threaded

    cols = columns + list(NATIVE)
    print(f"\n2 objectives: median hypervolume over {seeds} seeds after {points} points at parallelism "
          f"{parallel} (higher is better; the true front's is {BEST:.4f}); {schedule(how, pilots)}; "
          f"[ms of steering per point]")
    print(f"{'problem':<18}" + "".join(f"{c:>26}" for c in cols))
    errors = []
    worse: dict[str, list[str]] = {c: [] for c in columns}
    with ProcessPoolExecutor(jobs, initializer=single_threaded) as pool:
        for problem in problems:
            got = list(pool.map(run, [(problem, c, s, points, parallel, pilots, how) for c in cols
                                      for s in range(first_seed, first_seed + seeds)]))
            reference = [h for h, _, e in got[-seeds:] if not e]  # Optuna's own TPE is the last column
            row = f"{problem:<18}"
            for i, c in enumerate(cols):
                mine = got[i * seeds:(i + 1) * seeds]
                failed = [e for _, _, e in mine if e]
                if failed:
                    row += f"{f'{len(failed)}/{seeds} failed':>26}"
                    errors.append(f"{problem}, {c}: {failed[0]}")
                    continue
                if c in worse and reference and worse_p([h for h, _, _ in mine], reference, True) < SIGNIFICANT:
                    worse[c].append(problem)
                hv, ms = statistics.median(h for h, _, _ in mine), statistics.median(t for _, t, _ in mine) * 1e3
                row += f"{hv:>16.4f} [{ms:>6.1f}]"
            print(row, flush=True)
    for e in errors:
        print("error:", e)
    for c in columns:
        print(f"{c}: {significance(worse[c], len(problems))} ({NATIVE[-1]})")
