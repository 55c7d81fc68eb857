"""How long ``gridhpo plot`` takes to build the report of a 10,000-point task, and its size.

The task is generated through the repository API (no evaluation runs): points over four
parameters with a known objective, one attempt each (some interrupted and resumed on a
second attempt, some failed), ten metric reports per attempt, pilots on three sites.

    .venv/bin/python benchmarks/plot.py [--points 10000] [--repeat 3] [--db URL] [--browser]
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gridhpo.bookkeeping.repository import Changes, Repository

SPEC: dict[str, Any] = {
    "name": "bench",
    "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                     "layers": {"type": "int", "low": 1, "high": 4},
                     "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
                     "dropout": {"type": "float", "low": 0.0, "high": 0.5}},
    "objective": {"metric": "loss", "mode": "min"},
    "optimiser": {"backend": "random", "seed": 1},
    "budget": {"max_points": 10_000, "parallel": 32, "max_attempts": 3},
}


def generate(repo: Repository, n: int, name: str = "bench", steps: int = 10, seed: int = 1) -> int:
    """A finished task of ``n`` points written straight into the bookkeeping."""
    rng = random.Random(seed)
    spec = dict(SPEC, name=name, budget=dict(SPEC["budget"], max_points=n))
    task_id = repo.create_task(name, spec)
    t0 = repo.task(task_id).created_at
    params: list[dict[str, Any]] = [{"lr": 10 ** rng.uniform(-4, -1), "layers": rng.randint(1, 4),
               "activation": rng.choice(["relu", "tanh"]), "dropout": rng.uniform(0, 0.5)} for _ in range(n)]
    ids = repo.add_points(task_id, list(enumerate(params, start=1)))
    pilots = [(f"pilot-{s}-{i}", s) for s in ("cern", "desy", "local") for i in range(4)]
    for lo in range(0, n, 2000):
        ch = Changes()
        for k in range(lo, min(n, lo + 2000)):
            pid, p = ids[k], params[k]
            loss = (math.log10(p["lr"]) + 2.5) ** 2 + 0.1 * p["layers"] + (0.2 if p["activation"] == "tanh" else 0)
            start = t0 + k * 0.5
            pilot, site = pilots[k % len(pilots)]
            ch.pilots[pilot] = {"id": pilot, "task_id": task_id, "site": site, "host": None,
                                "first_seen": t0, "last_seen": start + 5}
            failed = k % 50 == 7
            interrupted = k % 20 == 3
            for att in (1, 2) if interrupted else (1,):
                end = start + 3
                state = "interrupted" if interrupted and att == 1 else ("failed" if failed else "finished")
                ch.new_attempts[(pid, att)] = {
                    "point_id": pid, "number": att, "pilot_id": pilot, "site": site, "started_at": start,
                    "state": state, "last_seen": end, "ended_at": end, "end_reason": state,
                    "value": None if state != "finished" else loss, "message": None, "stderr_tail": None}
                for s in range(steps if state != "interrupted" else steps // 2):
                    ch.metrics.append({"attempt_id": None, "_key": (pid, att), "point_id": pid, "seq": s,
                                       "step": float(s), "values": {"loss": loss + 2.0 / (s + 1)},
                                       "at": start + s * 0.3})
                start = end + 1
            ch.point_updates[pid] = {"b_id": pid, "state": "failed" if failed else "finished",
                                     "value": None if failed else loss, "attempt": 2 if interrupted else 1,
                                     "message": None, "dispatched_at": t0, "ended_at": start - 1}
        repo.apply(ch)
    repo.set_task_state(task_id, "finished")
    return task_id


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--browser", action="store_true", help="also time drawing the report in headless Chromium")
    ap.add_argument("--db", default=None, help="bookkeeping URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    from gridhpo.plots import data as D
    from gridhpo.plots import figures
    from gridhpo.plots.report import render_html

    with tempfile.TemporaryDirectory() as tmp:
        repo = Repository(args.db or f"sqlite:///{tmp}/bench.db")
        t = time.perf_counter()
        task_id = generate(repo, args.points, name=f"bench-{int(time.time())}")
        gen = time.perf_counter() - t
        rows, size, d = _time_steps(repo, task_id, Path(tmp), args.repeat)
        base = len(render_html({"generated_at": 0, "tasks": [], "compare": None}, "x"))
        curves = figures.curves_figure(D.learning_curves(d))
        print(f"task of {args.points} points generated in {gen:.1f}s "
              f"({sum(len(p.attempts) for p in d.points)} attempts, {sum(map(len, d.metrics.values()))} metric "
              f"reports, {len(curves['data'])} curve traces)")
        print(f"{'step':40s} {'median s':>9s} {'min s':>7s}  (n={args.repeat})")
        for name, ts in rows.items():
            print(f"{name:40s} {statistics.median(ts):9.2f} {min(ts):7.2f}")
        print(f"report size {size / 1e6:.1f} MB, of which plotly.js and page {base / 1e6:.1f} MB, "
              f"data {(size - base) / 1e6:.1f} MB")
        if args.browser:
            print(f"{'headless Chromium: load and draw the report':40s} {_browser_seconds(Path(tmp)):9.2f}")
        repo.close()
    return 0


def _time_steps(repo: Repository, task_id: int, tmp: Path, repeat: int) -> tuple[dict[str, list[float]], int, Any]:
    """Seconds of each step of making a report, ``repeat`` times; the report's size and the task's data."""
    from gridhpo.plots import data as D
    from gridhpo.plots.report import payload, render_html, write_report

    rows: dict[str, list[float]] = {"read bookkeeping": [], "figure data + importance (forest)": [],
                                    "importance anova instead": [], "HTML assembly": [],
                                    "write_report total (forest)": []}
    size = 0
    d: Any = None
    for _ in range(repeat):
        t = time.perf_counter()
        d = D.load(repo, task_id)
        rows["read bookkeeping"].append(time.perf_counter() - t)
        t = time.perf_counter()
        data = payload([d])
        rows["figure data + importance (forest)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        payload([d], importance="anova")
        rows["importance anova instead"].append(time.perf_counter() - t)
        t = time.perf_counter()
        render_html(data, "bench")
        rows["HTML assembly"].append(time.perf_counter() - t)
        t = time.perf_counter()
        write_report(repo, [task_id], tmp / "report.html")
        rows["write_report total (forest)"].append(time.perf_counter() - t)
        size = (tmp / "report.html").stat().st_size
    return rows, size, d


def _browser_seconds(tmp: Path) -> float:
    """Seconds from navigation until every figure of the report is drawn (software WebGL)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.browser import Browser

    b = Browser(tmp / "profile")
    try:
        t = time.perf_counter()
        b.goto((tmp / "report.html").as_uri())
        b.wait_for("document.body && document.body.dataset.ready === '1'", timeout=300)
        return time.perf_counter() - t
    finally:
        b.close()


if __name__ == "__main__":
    sys.exit(main())
