"""Before and after in one run: a benchmark script run alternately from two commits of this
repository, and the medians of its table's numbers side by side.

    .venv/bin/python benchmarks/compare.py --before 853ae20 [--after HEAD] [--repeat 5] \\
        -- dispatch.py --points 5000 --tasks 1 --optuna-trials 0

Each commit is checked out into a temporary git worktree and its own ``benchmarks/<script>``
runs there with this interpreter, its ``PYTHONPATH`` pointing at that worktree (so the pilots it
starts import that commit's code too). The runs alternate (before, after, before, ...) so that
a change in the machine's load falls on both sides alike. Every numeric cell of every table row
the script prints is collected per row; the table printed here holds, for each row and column,
the median before, the median after and their ratio (after / before).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"^-?\d+(\.\d+)?x?$")


def worktree(rev: str, into: Path) -> Path:
    path = into / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(path), rev], check=True)
    return path


def table_rows(out: str) -> dict[str, list[float]]:
    """The numeric cells of each line that has at least two, keyed by the line's leading words
    (the row's name), in order."""
    rows: dict[str, list[float]] = {}
    for line in out.splitlines():
        cells = line.split()
        numbers = [float(c.rstrip("x")) for c in cells if NUMBER.match(c)]
        if len(numbers) < 2:
            continue
        name = " ".join(c for c in cells[:8] if not NUMBER.match(c))
        key, n = name, 2
        while key in rows:  # two rows with the same name (e.g. 1 and 8 pilots): keep both
            key, n = f"{name} #{n}", n + 1
        rows[key] = numbers
    return rows


def run(tree: Path, script: str, args: list[str]) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(tree / "benchmarks" / script), *args], cwd=tree, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{script} at {tree.name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return table_rows(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="a commit, e.g. 853ae20")
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("script", help="a script in benchmarks/, e.g. dispatch.py")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    samples: dict[str, dict[str, list[list[float]]]] = {"before": defaultdict(list), "after": defaultdict(list)}
    with tempfile.TemporaryDirectory(prefix="gridhpo-compare-") as tmp:
        trees = {"before": worktree(a.before, Path(tmp)), "after": worktree(a.after, Path(tmp))}
        try:
            for i in range(a.repeat):
                for side in ("before", "after"):
                    for row, cells in run(trees[side], a.script, a.args).items():
                        samples[side][row].append(cells)
                    print(f"  run {i + 1}/{a.repeat} {side} done", file=sys.stderr)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"\n{a.script} {' '.join(a.args)}: medians of {a.repeat} alternating runs, "
          f"before = {a.before}, after = {a.after}; each cell: before / after (ratio after/before)\n")
    for row, runs in samples["after"].items():
        before = samples["before"].get(row)
        if not before:
            continue
        cols = min(len(r) for r in runs + before)
        cells = []
        for c in range(cols):
            b = statistics.median(r[c] for r in before)
            f = statistics.median(r[c] for r in runs)
            cells.append(f"{b:g} / {f:g} ({f / b:.2f})" if b else f"{b:g} / {f:g}")
        print(f"{row:<40} " + " | ".join(cells))


if __name__ == "__main__":
    main()
