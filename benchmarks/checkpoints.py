"""Checkpoint costs and the work an interruption loses.

1. Upload (archive + checksum + put + manifest entry) and verified restore (get + checksum +
   safe unpack) of 10 MB and 200 MB checkpoints of random bytes, on the local-folder store
   and on S3 (a SeaweedFS server started on loopback), median of REPEATS runs.
2. examples/resumable run by real pilots that are stopped again and again, and for each
   interruption the training progress lost (what the attempt had done minus what the next
   attempt restored), in seconds of training, next to the checkpoint interval:
   - walltime: the pilot stops the evaluation gracefully and the evaluation saves on SIGTERM;
   - walltime, no save on SIGTERM: the evaluation saves only at the end of each epoch;
   - hard kill: pilot and evaluation are SIGKILLed (a node crash): only periodic uploads count.

Run: .venv/bin/python benchmarks/checkpoints.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridhpo.bookkeeping.repository import Repository
from gridhpo.checkpoints import open_store
from gridhpo.checkpoints.manifest import Manifest
from gridhpo.steering.reports import render_table
from tests.resume_harness import run_resumable
from tests.seaweed import s3_store_url, seaweedfs


def transfer(store_urls: dict[str, str], sizes_mb: list[int], repeats: int, tmp: Path) -> list[list[str]]:
    rows = []
    for size in sizes_mb:
        src = tmp / f"src-{size}" / "checkpoint"
        src.mkdir(parents=True)
        with (src / "weights.bin").open("wb") as f:
            for _ in range(size):
                f.write(os.urandom(1 << 20))
        for name, url in store_urls.items():
            store = open_store(url)
            m = Manifest(store, f"bench-{size}/", keep=2)
            ups, downs = [], []
            for i in range(repeats):
                t0 = time.perf_counter()
                entry = m.save(src, tmp, task=0, point=0, attempt=i + 1, max_size=1 << 40)
                ups.append(time.perf_counter() - t0)
                assert entry is not None
                dest = tmp / "restore"
                dest.mkdir(exist_ok=True)
                t0 = time.perf_counter()
                got = m.restore(dest / "checkpoint", dest)
                downs.append(time.perf_counter() - t0)
                assert got is not None and got.sequence == entry.sequence
            for k in store.list(f"bench-{size}/"):
                store.delete(k)
            store.close()
            up, down = statistics.median(ups), statistics.median(downs)
            rows.append([name, f"{size} MB", f"{up:.2f}", f"{size / up:.0f}", f"{down:.2f}", f"{size / down:.0f}"])
    return rows


def lost_work(home: Path, store_url: str, label: str, epoch_seconds: float, interval: float,
              env: dict[str, str], hard_kill_after: float | None) -> list[str]:
    db = f"sqlite:///{home / 'gridhpo.db'}"
    run = run_resumable(home, db, f"filesystem://{home / 'queue'}", store_url, points=2, walltime=8.0,
                        interval=interval, epoch_seconds=epoch_seconds, hard_kill_after=hard_kill_after,
                        env={"GRIDHPO_EXAMPLE_REPORT_BATCHES": "1", **env}, timeout=400)
    repo = Repository(db)
    attempt_of = {a.id: (a.point_id, a.number) for a in repo.attempts(task_id=run.task_id)}
    start: dict[tuple[int, int], float] = {}
    reached: dict[tuple[int, int], float] = defaultdict(float)
    for m in repo.metrics(run.task_id):
        key = attempt_of[m.attempt_id]
        if m.values.get("event") == "start":
            start[key] = float(m.step)
        if m.step is not None:
            reached[key] = max(reached[key], float(m.step))
    repo.close()
    lost = []
    for (pid, n), done in reached.items():
        if (pid, n + 1) in start:
            lost.append((done - start[(pid, n + 1)]) * epoch_seconds)
    attempts = [len(p["attempts"]) for p in run.points]
    if not lost:
        return [label, f"{interval:g}", run.state, str(attempts), "0", "", "", ""]
    return [label, f"{interval:g}", run.state, str(attempts), str(len(lost)), f"{statistics.median(lost):.2f}",
            f"{max(lost):.2f}", f"{max(lost) / interval:.2f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 MB only, one repeat")
    ap.add_argument("--no-transfer", action="store_true", help="only the interruption scenarios")
    args = ap.parse_args()
    sizes, repeats = ([10], 1) if args.quick else ([10, 200], 3)
    with seaweedfs() as endpoint, tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        stores = {"local folder": f"file://{tmp / 'store'}", "S3 (SeaweedFS)": s3_store_url(endpoint)}
        if not args.no_transfer:
            rows = transfer(stores, sizes, repeats, tmp / "transfer")
            print(f"checkpoint upload and verified restore (median of {repeats})")
            print(render_table(["store", "size", "upload s", "MB/s", "restore s", "MB/s"], rows))
            print()
        epoch_seconds = 0.5
        rows = []
        scenarios = [
            ("walltime, save on SIGTERM", 1.0, {}, None),
            ("walltime, epoch saves only", 1.0, {"GRIDHPO_EXAMPLE_NO_SIGTERM_SAVE": "1"}, None),
            ("hard kill, interval 1s", 1.0, {"GRIDHPO_EXAMPLE_NO_SIGTERM_SAVE": "1"}, 3.0),
            ("hard kill, interval 2s", 2.0, {"GRIDHPO_EXAMPLE_NO_SIGTERM_SAVE": "1"}, 3.0),
        ]
        for i, (label, interval, env, kill) in enumerate(scenarios):
            home = tmp / f"home-{i}"
            home.mkdir()
            os.environ["GRIDHPO_HOME"] = str(home)
            rows.append(lost_work(home, f"file://{tmp / f'store-{i}'}", label, epoch_seconds, interval, env, kill))
        print(f"examples/resumable under interruptions (epoch = {epoch_seconds:g}s of training, local store): "
              "training lost per interruption")
        print(render_table(["scenario", "interval s", "task", "attempts/point", "interruptions", "median lost s",
                            "max lost s", "max / interval"], rows))


if __name__ == "__main__":
    main()
