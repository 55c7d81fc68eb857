"""What a private server costs a test (tests/private_servers.py): the time to start a private
PostgreSQL cluster and a private RabbitMQ node, to restart each (RabbitMQ with no outage), and
to stop and remove it.

    .venv/bin/python benchmarks/private_servers.py [--runs 3]

Prints one table: the median and the slowest of each over the runs, in seconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gridhpo.steering.tables import render_table  # noqa: E402
from tests.private_servers import private_postgres, private_rabbitmq  # noqa: E402

Start = Callable[[Path], AbstractContextManager[tuple[str, Callable[..., None]]]]


def _timed(start: Start, restart_args: tuple[Any, ...]) -> tuple[float, float, float]:
    """The seconds of: start, restart, stop and removal."""
    with tempfile.TemporaryDirectory(prefix="gridhpo-bench-") as tmp:
        t0 = time.monotonic()
        with start(Path(tmp)) as (_, restart):
            t1 = time.monotonic()
            restart(*restart_args)
            t2 = time.monotonic()
        return t1 - t0, t2 - t1, time.monotonic() - t2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows: list[list[object]] = []
    servers: list[tuple[str, Start, tuple[Any, ...]]] = [("PostgreSQL", private_postgres, ()),
                                                         ("RabbitMQ", private_rabbitmq, (0.0,))]
    for name, start, restart_args in servers:
        runs = [_timed(start, restart_args) for _ in range(args.runs)]
        for phase, times in zip(("start", "restart", "stop + remove"), zip(*runs, strict=True), strict=True):
            rows.append([name, phase, f"{statistics.median(times):.1f}", f"{max(times):.1f}"])
    print(render_table(["server", "phase", "median s", f"slowest s (of {args.runs})"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
