"""Points per second through steering + queue + bookkeeping, with a trivial objective run
in the pilots' own process (``evaluation: {python: ...}``), so the figure measures our path
and not process start-up.

    .venv/bin/python benchmarks/dispatch.py [--points 5000] [--pilots 1 8] [--optuna-trials 300]

Prints one table: for each configuration the points/s over the whole task and the per-point
cost (ms) in the first and last 10% of the points (it must not grow with the task); and, as
the reference measured in the same run, Optuna's trials/s with its PostgreSQL storage.
Needs the servers of this machine for the production rows (PostgreSQL, RabbitMQ).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gridhpo.bookkeeping import Repository  # noqa: E402
from gridhpo.steering.runner import run_task, submit  # noqa: E402
from gridhpo.steering.taskfile import parse_task  # noqa: E402
from tests.servers import postgres_database, rabbitmq_vhost  # noqa: E402


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


def measure(db: str, broker: str, points: int, pilots: int) -> dict[str, float]:
    repo = Repository(db)
    tid, _ = submit(repo, spec(points, parallel=max(8, 4 * pilots)))
    t0 = time.time()
    cpu0 = cpu_now()
    result = run_task(repo, broker, tid, pilots)
    cpu1 = cpu_now()
    assert result.state == "finished", result
    ends = sorted(p.ended_at for p in repo.points(tid))
    starts = min(a.started_at for a in repo.attempts(task_id=tid))
    wall = ends[-1] - starts
    k = max(2, points // 10)
    first = (ends[k - 1] - ends[0]) / (k - 1) * 1000
    last = (ends[-1] - ends[-k]) / (k - 1) * 1000
    repo.close()
    out = {"rate": points / wall, "first_ms": first, "last_ms": last, "total_s": time.time() - t0}
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
    ap.add_argument("--optuna-trials", type=int, default=400)
    ap.add_argument("--only", choices=["embedded", "production"], default=None)
    args = ap.parse_args()
    rows: list[tuple[str, int, dict[str, float]]] = []
    for setup in ("embedded", "production"):
        if args.only and setup != args.only:
            continue
        for n in args.pilots:
            home = Path(tempfile.mkdtemp(prefix="gridhpo-bench-"))
            os.environ["GRIDHPO_HOME"] = str(home)
            try:
                if setup == "embedded":
                    r = measure(f"sqlite:///{home / 'b.db'}", f"filesystem://{home / 'q'}", args.points, n)
                else:
                    with postgres_database() as db, rabbitmq_vhost() as mq:
                        r = measure(db, mq, args.points, n)
            finally:
                shutil.rmtree(home, ignore_errors=True)
            rows.append((setup, n, r))
            print(f"  {setup} {n} pilots: {r['rate']:.0f} points/s", file=sys.stderr)
    ref = {w: optuna_rate(args.optuna_trials, w) for w in sorted(set(args.pilots))} if args.optuna_trials else {}
    print(f"\n{args.points}-point task, trivial in-process objective, {os.cpu_count()} cores\n")
    print(f"{'setup':<34} {'pilots':>6} {'points/s':>9} {'first 10% ms/pt':>16} {'last 10% ms/pt':>15} "
          f"{'vs Optuna':>10}   CPU ms/pt: steering pilots broker database")
    names = {"embedded": "gridhpo SQLite + folder queue", "production": "gridhpo PostgreSQL + RabbitMQ"}
    for setup, n, r in rows:
        o = ref.get(n)
        vs = f"{r['rate'] / o:.1f}x" if o else "-"
        cpu = " ".join(f"{r[f'cpu_{k}']:>8.2f}" for k in ("steering", "pilots", "broker", "database"))
        print(f"{names[setup]:<34} {n:>6} {r['rate']:>9.0f} {r['first_ms']:>16.2f} {r['last_ms']:>15.2f} {vs:>10}"
              f"   {cpu}")
    for w, o in ref.items():
        if o:
            print(f"{'Optuna RandomSampler + PostgreSQL':<34} {w:>6} {o:>9.1f} {'':>16} {'':>15} {'1.0x':>10}")
    if rows:
        print(f"\nmedian points/s: {statistics.median(r['rate'] for _, _, r in rows):.0f}")


if __name__ == "__main__":
    main()
