"""The long chaos run of issue 8: a 1,000-point task on PostgreSQL + RabbitMQ, 8 pilot
processes, a pilot SIGKILLed (with its evaluation) every few seconds and replaced (preferably
one mid-evaluation with a checkpoint saved), the steering SIGKILLed and restarted twice,
a private RabbitMQ and a private PostgreSQL restarted once each.

    .venv/bin/python benchmarks/chaos.py [--points 1000] [--pilots 8] [--kill-every 4]
                                         [--steering-kills 2] [--rabbitmq-restarts 1]
                                         [--postgres-restarts 1] [--embedded]

Prints one table: points lost, results double-counted, wrong values, points resumed from a
checkpoint, attempts, the disruptions that happened and the total time. Goal: 0 lost, 0
double-counted, task complete. The servers it restarts are a private PostgreSQL cluster and a
private RabbitMQ node started for the run (tests/private_servers.py: the machine's binaries,
loopback, free ports, removed afterwards), never the machine's shared servers. --embedded runs
on SQLite + the folder queue instead (no server restarts).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gridhpo.steering.tables import render_table  # noqa: E402
from tests.chaos_harness import ChaosPlan, ChaosResult, Restarts, run_chaos  # noqa: E402
from tests.private_servers import private_postgres, private_rabbitmq  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--pilots", type=int, default=8)
    ap.add_argument("--kill-every", type=float, default=4.0, help="seconds between two pilot kills")
    ap.add_argument("--steering-kills", type=int, default=2)
    ap.add_argument("--rabbitmq-restarts", type=int, default=1)
    ap.add_argument("--postgres-restarts", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4, help="checkpointed epochs per evaluation")
    ap.add_argument("--epoch-seconds", type=float, default=0.25)
    ap.add_argument("--embedded", action="store_true", help="SQLite + folder queue, no server restarts")
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args()
    plan = ChaosPlan(points=args.points, pilots=args.pilots, kill_every=args.kill_every,
                     steering_kills=args.steering_kills,
                     rabbitmq_restarts=0 if args.embedded else args.rabbitmq_restarts,
                     postgres_restarts=0 if args.embedded else args.postgres_restarts,
                     epochs=args.epochs, epoch_seconds=args.epoch_seconds, timeout=args.timeout)
    work = Path(tempfile.mkdtemp(prefix="gridhpo-chaos-"))

    def say(msg: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    if args.embedded:
        r = run_chaos(work, f"sqlite:///{work / 'home' / 'gridhpo.db'}", f"filesystem://{work / 'home' / 'queue'}",
                      plan, say)
        where = "SQLite + folder queue"
    else:
        with private_postgres(work) as (db, restart_pg), private_rabbitmq(work) as (broker, restart_mq):
            r = run_chaos(work, db, broker, plan, say, Restarts(rabbitmq=restart_mq, postgres=restart_pg))
        where = "private PostgreSQL + RabbitMQ"
    print(report(r, plan, where))
    for crash in r.steering_crashes:
        print(f"steering crash: {crash}", file=sys.stderr)
    ok = r.state == "finished" and r.lost == r.double_counted == r.wrong_values == 0 and not r.steering_crashes
    return 0 if ok else 1


def report(r: ChaosResult, plan: ChaosPlan, where: str) -> str:
    rows: list[list[object]] = [
        ["bookkeeping + queue", where],
        ["task", f"{r.state}: {r.points} points of {plan.points}"],
        ["points lost", r.lost],
        ["results double-counted", r.double_counted],
        ["values wrong", r.wrong_values],
        ["points resumed from a checkpoint", r.resumed],
        ["attempts (points + retries)", r.attempts],
        ["pilots SIGKILLed", f"{r.pilot_kills} (one every {plan.kill_every:g}s, {plan.pilots} running)"],
        ["steering SIGKILLed and restarted", r.steering_kills],
        ["RabbitMQ restarts", r.rabbitmq_restarts],
        ["PostgreSQL restarts", r.postgres_restarts],
        ["steering crashes not caused by us", len(r.steering_crashes)],
        ["total time", f"{r.elapsed:.0f} s"],
        ["logs", str(r.log_dir)],
    ]
    return render_table(["chaos", "result"], rows)


if __name__ == "__main__":
    sys.exit(main())
