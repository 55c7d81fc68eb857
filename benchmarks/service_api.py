"""What a request to the service costs: a real ``gridhpo server --no-steer`` (the API alone,
plain HTTP on loopback), one user with 20 tasks of 50 points each; each API call timed from the client (the
standard-library client the CLI uses), one request at a time, then several clients at once.

    .venv/bin/python benchmarks/service_api.py [--requests 200] [--clients 8] [--production]

--production: PostgreSQL + RabbitMQ of this machine (tests/servers.py) instead of SQLite.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._setups import fresh_setup
from gridhpo.bookkeeping import Repository
from gridhpo.service.client import Service
from tests.service_harness import running_service

TASK: dict[str, Any] = {"search_space": {"x": {"type": "float", "low": 0, "high": 1}},
                        "budget": {"max_points": 50}, "evaluation": {"command": "true"}}


def fill(client: Service, repo: Repository, tasks: int) -> int:
    """``tasks`` tasks of the user, each with 50 queued points; returns the last one's id."""
    tid = 0
    for n in range(tasks):
        tid = int(client.submit(TASK | {"name": f"bench-{n}"})["id"])
        repo.add_points(tid, [(i, {"x": i / 50}) for i in range(50)])
    return tid


def timed(call: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def row(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return f"{name:<34} {statistics.median(ms):>8.1f} {p99:>8.1f} {len(ms) / sum(seconds):>8.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--production", action="store_true")
    args = ap.parse_args()
    with fresh_setup(not args.production) as (db, broker), \
            running_service(db, broker, Path(tempfile.mkdtemp(prefix="gridhpo-bench-")), tls=False,
                            extra=("--no-steer",)) as svc:
        svc.add_user("bench")
        client = Service(svc.url, svc.tokens["bench"])
        tid = fill(client, Repository(db), 20)
        calls = {"GET /me (token check only)": client.me, "GET /tasks (20 tasks)": client.tasks,
                 "GET /tasks/{id}": lambda: client.task(tid),
                 "GET /tasks/{id}/results (50)": lambda: client.results(tid)}
        print(f"{'request, one at a time':<34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
        for name, call in calls.items():
            print(row(name, timed(call, args.requests)))
        with ThreadPoolExecutor(args.clients) as pool:
            start = time.perf_counter()
            spans = list(pool.map(lambda _: timed(client.me, 1)[0], range(args.requests * 2)))
            wall = time.perf_counter() - start
        ms = sorted(s * 1000 for s in spans)
        print(f"{f'GET /me, {args.clients} clients at once':<34} {statistics.median(ms):>8.1f} "
              f"{ms[int(0.99 * len(ms))]:>8.1f} {len(ms) / wall:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
