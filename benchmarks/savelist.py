"""The cost of phpo's checkPointToSave (a list of work-directory paths) against the checkpoint/
folder: one upload through the pilot's own code (PointCheckpoints: fingerprint, staging copy for
a save list, archive, checksum, put, manifest entry) and one verified restore (with the save list
put back at its names, or packed into the checkPointToLoad tarball: ``ckpt.tar`` plain,
``ckpt.tgz`` gzip-compressed, as its name says), on the local-folder store,
for 10 MB and 100 MB (phpo's cap) of random bytes in 4 files. Median of REPEATS runs.

Run: .venv/bin/python benchmarks/savelist.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridhpo.checkpoints import open_store
from gridhpo.evaluation.checkpointing import PointCheckpoints, Settings
from gridhpo.protocol import PointMessage, PointObjective
from gridhpo.protocol.evaluation import CheckpointSpec, EvaluationSpec


def workdir(root: Path, size: int, where: str) -> Path:
    w = root / "w"
    (w / where).mkdir(parents=True)
    for i in range(4):
        (w / where / f"part{i}.bin").write_bytes(os.urandom(size // 4))
    return w


def one(size: int, mode: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        save = [] if mode == "checkpoint/" else ["model"]
        load = {"save + load": "ckpt.tar", "save + .tgz": "ckpt.tgz"}.get(mode)
        w = workdir(root, size, "checkpoint" if not save else "model")
        spec = EvaluationSpec(command="true", checkpoint=CheckpointSpec(interval=0, max_size=1 << 30, save=save,
                                                                        load=load))
        msg = PointMessage(task_id=1, task_name="b", point_id=1, number=0, attempt=1, params={}, evaluation=spec,
                           objective=PointObjective())
        store = open_store(f"file://{root / 'store'}")
        settings = Settings(f"file://{root / 'store'}", 0, 3, 1 << 30, None, tuple(save), load)
        cp = PointCheckpoints(store, settings, msg, w, lambda _: None)
        cp._last_fp = ()  # the folder counts as changed
        t0 = time.perf_counter()
        cp.final()
        up = time.perf_counter() - t0
        fresh = root / "fresh"
        (fresh / "checkpoint").mkdir(parents=True)
        t0 = time.perf_counter()
        PointCheckpoints(store, settings, msg, fresh, lambda _: None).restore()
        down = time.perf_counter() - t0
        return up, down


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    repeats = 2 if ap.parse_args().quick else 5
    print(f"{'size':>7} {'what is saved':<14} {'upload s':>9} {'restore s':>10}")
    for size in (10_000_000, 100_000_000):
        for mode in ("checkpoint/", "save list", "save + load", "save + .tgz"):
            runs = [one(size, mode) for _ in range(repeats)]
            print(f"{size // 1_000_000:>5}MB {mode:<14} {statistics.median(r[0] for r in runs):>9.3f} "
                  f"{statistics.median(r[1] for r in runs):>10.3f}")


if __name__ == "__main__":
    main()
