"""Does a large task starve a small one? One steering serves a small task (1 pilot, an
objective of a few milliseconds) alone, then beside a large task that keeps the steering
busy: one with many fast pilots (a flood of events), and one with a slow model-based
optimiser (a Gaussian process refitted on every ask).

    .venv/bin/python benchmarks/fairness.py [--small 300] [--large-pilots 6] [--repeats 3]

Prints one table: the small task's points/s and median seconds from a point's creation to
its result, alone and beside each large task, and the ratio to alone (1.0 = not slowed at
all). The large task is cancelled once the small one ends. Runs on PostgreSQL + RabbitMQ
(the servers of this machine), or with --embedded on SQLite + the folder queue.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
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

SPACE = {"x": {"type": "float", "low": -1, "high": 1}, "y": {"type": "float", "low": -1, "high": 1}}


def task(points: int, objective: str, optimiser: dict[str, Any], parallel: int) -> Any:
    return parse_task({
        "name": f"fair-{uuid.uuid4().hex[:6]}", "search_space": SPACE, "optimiser": optimiser,
        "budget": {"max_points": points, "parallel": parallel, "min_queued": parallel},
        "evaluation": {"python": f"_trivial:{objective}"},
    }, base_dir=HERE)


LARGE = {
    "none": None,
    "flood": lambda pilots: (task(10**6, "objective", {"backend": "random", "seed": 2}, 8 * pilots), pilots),
    "slow optimiser": lambda pilots: (task(10**6, "objective", {"backend": "skopt", "algorithm": "gp",
                                                              "seed": 2}, 2), 2),
}


def measure(db: str, broker: str, small_points: int, large: str, large_pilots: int) -> dict[str, float]:
    repo = Repository(db)
    small_id, _ = submit(repo, task(small_points, "sleepy", {"backend": "random", "seed": 1}, 4))
    ids, pilots = [small_id], [1]
    make = LARGE[large]
    if make is not None:
        spec, n = make(large_pilots)
        ids.append(submit(repo, spec)[0])
        pilots.append(n)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if repo.task(small_id).state != "active":
                stop.set()
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run_tasks(repo, broker, ids, pilots, stop=stop)
    for tid in ids[1:]:
        repo.set_task_state(tid, "cancelled", "benchmark: the small task ended")
    points = [p for p in repo.points(small_id) if p.state == "finished"]
    assert len(points) == small_points, f"small task finished {len(points)} of {small_points}"
    start = min(p.created_at for p in points)
    end = max(p.ended_at for p in points)
    large_done = sum(repo.counts(tid).get("finished", 0) for tid in ids[1:])
    repo.close()
    return {"rate": small_points / (end - start),
            "latency": statistics.median(p.ended_at - p.created_at for p in points),
            "large_rate": large_done / (end - start)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=300, help="points of the small task")
    ap.add_argument("--large-pilots", type=int, default=6, help="pilots of the flooding large task")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each row, interleaved; medians are shown")
    ap.add_argument("--embedded", action="store_true", help="SQLite + folder queue instead of the servers")
    args = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in LARGE}
    for r in range(args.repeats):
        for large in LARGE:
            with fresh_setup(args.embedded) as (db, mq):
                out = measure(db, mq, args.small, large, args.large_pilots)
            runs[large].append(out)
            print(f"  run {r + 1}, beside {large}: {out['rate']:.0f} points/s", file=sys.stderr)
    med = {k: {m: statistics.median(o[m] for o in v) for m in v[0]} for k, v in runs.items() if v}
    alone = med["none"]
    setup = "SQLite + folder queue" if args.embedded else "PostgreSQL + RabbitMQ"
    print(f"\nsmall task: {args.small} points, 1 pilot, 5 ms objective; {setup}; {os.cpu_count()} cores; "
          f"medians of {args.repeats} interleaved runs\n")
    print(f"{'small task beside':<42} {'points/s':>9} {'vs alone':>9} {'median s to result':>19} "
          f"{'large task points/s':>20}")
    names = {"none": "nothing (alone)", "flood": f"a large task, {args.large_pilots} fast pilots",
             "slow optimiser": "a large task, GP optimiser, 2 pilots"}
    for k, m in med.items():
        large = f"{m['large_rate']:>20.0f}" if k != "none" else f"{'':>20}"
        print(f"{names[k]:<42} {m['rate']:>9.0f} {m['rate'] / alone['rate']:>9.2f} {m['latency']:>19.3f} {large}")


if __name__ == "__main__":
    main()
