"""The two setups the benchmarks compare, each fresh for one measurement."""
from __future__ import annotations

import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers import postgres_database, rabbitmq_vhost


@contextmanager
def fresh_setup(embedded: bool) -> Iterator[tuple[str, str]]:
    """(bookkeeping URL, broker URL) under a new GRIDHPO_HOME: SQLite + the folder queue inside
    it, or a new database and virtual host on this machine's PostgreSQL and RabbitMQ."""
    home = Path(tempfile.mkdtemp(prefix="gridhpo-bench-"))
    os.environ["GRIDHPO_HOME"] = str(home)
    try:
        if embedded:
            yield f"sqlite:///{home / 'b.db'}", f"filesystem://{home / 'q'}"
        else:
            with postgres_database() as db, rabbitmq_vhost() as mq:
                yield db, mq
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_embedded(spec: Any, pilots: int) -> tuple[list[Any], float]:
    """Run one task as ``gridhpo run`` does, on a fresh embedded setup: (its finished points,
    the steering's CPU seconds); a task that did not finish is a GridHPOError."""
    from gridhpo.bookkeeping import Repository
    from gridhpo.errors import GridHPOError
    from gridhpo.steering.runner import run_tasks, submit

    with fresh_setup(embedded=True) as (db, mq):
        repo = Repository(db)
        tid = submit(repo, spec)[0]
        cpu0 = _cpu()
        result = run_tasks(repo, mq, [tid], pilots)[0]
        cpu = _cpu() - cpu0
        done = [p for p in repo.points(tid) if p.state == "finished"]
        repo.close()
    if result.state != "finished" or not done:
        raise GridHPOError(f"task ended {result.state}: {result.progress}")
    return done, cpu


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime
