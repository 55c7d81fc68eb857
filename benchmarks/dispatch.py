"""Points per second through steering + queue + bookkeeping, with a trivial objective run
in the pilots' own process (``evaluation: {python: ...}``), so the figure measures our path
and not process start-up.

    .venv/bin/python benchmarks/dispatch.py [--points 5000] [--pilots 1 8] [--optuna-trials 300]

Prints one table: for each configuration (1 or 8 pilots; 1 or 20 concurrent tasks served by
one steering) the points/s, the per-point cost (ms) in the first and last 10% of the points
(it must not grow with the task), how evenly concurrent tasks progress, the CPU each part
spent per point, and, as the reference measured in the same run, Optuna's trials/s with its
PostgreSQL storage.
Needs the servers of this machine for the production rows (PostgreSQL, RabbitMQ).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._setups import fresh_setup  # noqa: E402
from gridhpo.bookkeeping import Repository  # noqa: E402
from gridhpo.steering.runner import run_tasks, submit  # noqa: E402
from gridhpo.steering.taskfile import parse_task  # noqa: E402
from tests.servers import postgres_database  # noqa: E402


def spec(points: int, parallel: int) -> Any:
    return parse_task({
        "name": f"dispatch-{uuid.uuid4().hex[:6]}",
        "search_space": {"x": {"type": "float", "low": -1, "high": 1}, "y": {"type": "float", "low": -1, "high": 1}},
        "optimiser": {"backend": "random", "seed": 1},
        "budget": {"max_points": points, "parallel": parallel, "min_queued": 64},
        "evaluation": {"python": "_trivial:objective"},
    }, base_dir=HERE)


def server_cpu(name: str) -> float:
    """CPU seconds used so far by the processes called ``name`` and their reaped children."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm.startswith(name):
            f = stat[stat.rindex(")") + 2:].split()
            total += sum(int(x) for x in f[11:15]) / tick  # utime stime cutime cstime
    return total


def cpu_now() -> dict[str, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"steering": me.ru_utime + me.ru_stime, "pilots": kids.ru_utime + kids.ru_stime,
            "broker": server_cpu("beam.smp"), "database": server_cpu("postgres")}


def measure(db: str, broker: str, points: int, pilots: int, tasks: int = 1) -> dict[str, float]:
    """One steering, ``tasks`` tasks of points/tasks points each, ``pilots`` pilots in all
    (at least one per task: a pilot serves one task)."""
    repo = Repository(db)
    per_task = max(1, pilots // tasks)
    tids = [submit(repo, spec(points // tasks, parallel=max(8, 4 * per_task)))[0] for _ in range(tasks)]
    t0 = time.time()
    cpu0 = cpu_now()
    results = run_tasks(repo, broker, tids, per_task)
    cpu1 = cpu_now()
    assert all(r.state == "finished" for r in results), results
    points = points // tasks * tasks
    ends = sorted(p.ended_at for tid in tids for p in repo.points(tid))
    starts = min(a.started_at for tid in tids for a in repo.attempts(task_id=tid))
    task_ends = [max(p.ended_at for p in repo.points(tid)) - starts for tid in tids]
    wall = ends[-1] - starts
    k = max(2, points // 10)
    first = (ends[k - 1] - ends[0]) / (k - 1) * 1000
    last = (ends[-1] - ends[-k]) / (k - 1) * 1000
    repo.close()
    out = {"rate": points / wall, "first_ms": first, "last_ms": last, "total_s": time.time() - t0,
           "tasks": tasks, "fair": min(task_ends) / max(task_ends)}
    out.update({f"cpu_{k}": (cpu1[k] - cpu0[k]) / points * 1000 for k in cpu0})
    return out


def optuna_rate(trials: int, workers: int) -> float | None:
    try:
        import optuna
    except ImportError:
        print("(optuna not installed: `.venv/bin/pip install optuna` for the reference row)", file=sys.stderr)
        return None
    with postgres_database() as url:
        code = (
            "import optuna,sys,time\n"
            "optuna.logging.set_verbosity(optuna.logging.ERROR)\n"
            "s=optuna.load_study(study_name='b',storage=sys.argv[1],sampler=optuna.samplers.RandomSampler())\n"
            "f=lambda t:(t.suggest_float('x',-1,1)-0.3)**2+(t.suggest_float('y',-1,1)+0.1)**2\n"
            "s.optimize(f,n_trials=int(sys.argv[2]))\n"
        )
        import optuna

        optuna.create_study(study_name="b", storage=url)
        t0 = time.time()
        procs = [subprocess.Popen([sys.executable, "-c", code, url, str(trials // workers)]) for _ in range(workers)]
        for p in procs:
            p.wait()
        return (trials // workers * workers) / (time.time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--pilots", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--tasks", type=int, nargs="+", default=[1, 20],
                    help="concurrent tasks (PostgreSQL + RabbitMQ only beyond 1); the points are split among them")
    ap.add_argument("--optuna-trials", type=int, default=400)
    ap.add_argument("--only", choices=["embedded", "production"], default=None)
    args = ap.parse_args()
    rows: list[tuple[str, int, dict[str, float]]] = []
    for setup in ("embedded", "production"):
        if args.only and setup != args.only:
            continue
        for tasks in (args.tasks if setup == "production" else [1]):
            for n in args.pilots:
                with fresh_setup(setup == "embedded") as (db, mq):
                    r = measure(db, mq, args.points, n, tasks)
                rows.append((setup, n, r))
                print(f"  {setup} {tasks} tasks {n} pilots: {r['rate']:.0f} points/s", file=sys.stderr)
    ref = {w: optuna_rate(args.optuna_trials, w) for w in sorted(set(args.pilots))} if args.optuna_trials else {}
    best_ref = max((o for o in ref.values() if o), default=None)
    print(f"\n{args.points} points, trivial in-process objective, {os.cpu_count()} cores; pilots: per task when "
          "there are several tasks (at least one each)\n")
    print(f"{'setup':<34} {'tasks':>5} {'pilots':>6} {'points/s':>9} {'first 10% ms/pt':>16} {'last 10% ms/pt':>15} "
          f"{'fairness':>9} {'vs Optuna':>10}   CPU ms/pt: steering pilots broker database")
    names = {"embedded": "gridhpo SQLite + folder queue", "production": "gridhpo PostgreSQL + RabbitMQ"}
    for setup, n, r in rows:
        vs = f"{r['rate'] / best_ref:.1f}x" if best_ref else "-"
        cpu = " ".join(f"{r[f'cpu_{k}']:>8.2f}" for k in ("steering", "pilots", "broker", "database"))
        pilots = max(1, n // int(r["tasks"])) * int(r["tasks"])
        print(f"{names[setup]:<34} {int(r['tasks']):>5} {pilots:>6} {r['rate']:>9.0f} {r['first_ms']:>16.2f} "
              f"{r['last_ms']:>15.2f} {r['fair']:>9.2f} {vs:>10}   {cpu}")
    for w, o in ref.items():
        if o:
            print(f"{'Optuna RandomSampler + PostgreSQL':<34} {1:>5} {w:>6} {o:>9.1f} {'':>16} {'':>15} {'':>9} "
                  f"{o / best_ref:>9.1f}x" if best_ref else "")
    print("\nvs Optuna: against Optuna's best rate of the run; fairness: the first task's end over the last "
          "task's end (1.0 = all tasks end together)")


if __name__ == "__main__":
    main()
