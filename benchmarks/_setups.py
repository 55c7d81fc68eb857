"""The two setups the benchmarks compare, each fresh for one measurement."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
