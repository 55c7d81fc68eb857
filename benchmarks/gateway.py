"""The pilot gateway beside AMQP: points per second with a trivial objective, and heartbeat
answers under many simulated pilots.

    .venv/bin/python benchmarks/gateway.py [--points 2000] [--pilots 1 4] [--simulated 1000] [--only production]

Prints one table. Rate rows: the same task (trivial in-process objective, so the figure
measures our path) run once by pilots on the broker and once by pilots through the gateway
(``gridhpo pilot --server``; the gateway a process of its own, plain HTTP on loopback).
Load rows: N simulated pilots in one process (asyncio), each holding a point of a task with
a long evaluation, sending a heartbeat every 10 s and long-polling for points between them,
while one real HTTP pilot runs a trivial task beside them: the heartbeat answer's p50/p99, the
steering's round time and the rate of real points served.
Needs the servers of this machine for the production rows (PostgreSQL, RabbitMQ).
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._setups import fresh_setup  # noqa: E402
from gridhpo.bookkeeping import Repository  # noqa: E402
from gridhpo.steering.runner import run_tasks, submit  # noqa: E402
from gridhpo.steering.taskfile import parse_task  # noqa: E402
from tests.gateway_harness import gateway_process  # noqa: E402


def spec(points: int, parallel: int, evaluation: dict[str, Any] | None = None) -> Any:
    return parse_task({
        "name": f"gateway-{uuid.uuid4().hex[:6]}",
        "search_space": {"x": {"type": "float", "low": -1, "high": 1}, "y": {"type": "float", "low": -1, "high": 1}},
        "optimiser": {"backend": "random", "seed": 1},
        "budget": {"max_points": points, "parallel": parallel, "min_queued": 64},
        "evaluation": evaluation or {"python": "_trivial:objective"},
    }, base_dir=HERE)


def rate(repo: Repository, tid: int) -> float:
    ends = sorted(p.ended_at for p in repo.points(tid))
    starts = min(a.started_at for a in repo.attempts(task_id=tid))
    return len(ends) / (ends[-1] - starts)


def measure_rate(embedded: bool, points: int, pilots: int, through_gateway: bool) -> float:
    with fresh_setup(embedded) as (db, mq):
        repo = Repository(db)
        tid, _ = submit(repo, spec(points, parallel=max(8, 4 * pilots)))
        if through_gateway:
            with gateway_process(db, mq, Path(os.environ["GRIDHPO_HOME"]) / "gateway.log") as gw:
                result = run_tasks(repo, mq, [tid], pilots, pilot_args=["--server", gw.url])[0]
        else:
            result = run_tasks(repo, mq, [tid], pilots)[0]
        assert result.state == "finished", result
        r = rate(repo, tid)
        repo.close()
        return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--pilots", type=int, nargs="*", default=[1, 4], help="pilots for the rate rows (none: skip them)")
    ap.add_argument("--simulated", type=int, nargs="*", default=[1000],
                    help="simulated pilots for the load rows (none: skip them)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds each load row is measured")
    ap.add_argument("--only", choices=["embedded", "production"], default=None)
    args = ap.parse_args()
    rows: list[tuple[str, int, float, float]] = []
    for setup in ("embedded", "production"):
        if args.only and setup != args.only:
            continue
        for n in args.pilots:
            amqp = measure_rate(setup == "embedded", args.points, n, False)
            http = measure_rate(setup == "embedded", args.points, n, True)
            rows.append((setup, n, amqp, http))
            print(f"  {setup} {n} pilots: broker {amqp:.0f}, gateway {http:.0f} points/s", file=sys.stderr)
    load: list[dict[str, float]] = []
    if args.simulated and args.only != "embedded":
        from benchmarks._gateway_load import measure_load

        for n in args.simulated:
            with fresh_setup(False) as (db, mq):
                load.append(measure_load(db, mq, n, args.duration))
            print(f"  {n} simulated pilots: {load[-1]}", file=sys.stderr)
    names = {"embedded": "SQLite + folder queue", "production": "PostgreSQL + RabbitMQ"}
    kind = "folder queue" if args.only == "embedded" else "broker"
    print(f"\n{args.points} points, trivial in-process objective, {os.cpu_count()} cores\n")
    print(f"{'setup':<24} {'pilots':>6} {f'{kind} points/s':>18} {'gateway points/s':>17} {'gateway/broker':>15}")
    for setup, n, amqp, http in rows:
        print(f"{names[setup]:<24} {n:>6} {amqp:>18.0f} {http:>17.0f} {http / amqp:>15.2f}")
    if load:
        print("\nsimulated pilots (one process; a heartbeat every 10 s each, long-polls between), "
              "PostgreSQL + RabbitMQ\n")
        print(f"{'pilots':>7} {'heartbeats/s':>13} {'answer p50 ms':>14} {'answer p99 ms':>14} "
              f"{'steering round p50 ms':>22} {'real points/s beside':>21}")
        for r in load:
            print(f"{int(r['pilots']):>7} {r['beats_per_s']:>13.0f} {r['p50_ms']:>14.1f} {r['p99_ms']:>14.1f} "
                  f"{r['round_ms']:>22.1f} {r['real_rate']:>21.0f}")


if __name__ == "__main__":
    main()
