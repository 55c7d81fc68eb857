"""One steering per bookkeeping, also across a database restart."""
from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from gridhpo.bookkeeping import Repository
from gridhpo.errors import BookkeepingError
from gridhpo.steering.lock import SteeringLock
from tests.servers import PG_ADMIN


def test_a_second_steering_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    first, second = SteeringLock(Repository(url)), SteeringLock(Repository(url))
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def _end_session(lock: SteeringLock) -> None:
    """What a PostgreSQL restart does to the session holding the advisory lock.

    ``pg_terminate_backend(pid)`` only signals the backend and returns at once: on a loaded
    machine the backend may still hold the lock when the next statement runs (the CI flake).
    With a timeout it returns once the backend has exited, after it released its locks."""
    assert lock._conn is not None
    pid = lock._conn.execute(text("SELECT pg_backend_pid()")).scalar()
    lock._conn.commit()
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s, 60000)", (pid,)).fetchone()
        assert row is not None and row[0], f"backend {pid} did not exit within 60 s"


@pytest.mark.integration
def test_the_postgresql_lock_is_taken_again_after_its_session_ended(pg_url: str) -> None:
    first, second = SteeringLock(Repository(pg_url)), SteeringLock(Repository(pg_url))
    assert first.acquire() and not second.acquire()
    _end_session(first)
    first.verify()  # its session is gone: it takes the lock again
    assert not second.acquire()
    first.release()


@pytest.mark.integration
def test_a_steering_whose_lock_was_taken_meanwhile_stops(pg_url: str) -> None:
    first, second = SteeringLock(Repository(pg_url)), SteeringLock(Repository(pg_url))
    assert first.acquire()
    _end_session(first)
    assert second.acquire()  # the other steering got in while the first was cut off
    with pytest.raises(BookkeepingError, match="another steering took the lock"):
        first.verify()
    second.release()


def test_hard_links_to_one_sqlite_file_share_its_lock(tmp_path: Path) -> None:
    """Two names of one file (a hard link, a symlink) are one bookkeeping: one steering."""
    db = tmp_path / "a" / "b.db"
    db.parent.mkdir()
    Repository(f"sqlite:///{db}").close()
    (tmp_path / "other").mkdir()
    hard, soft = tmp_path / "other" / "hard.db", tmp_path / "soft.db"
    hard.hardlink_to(db)
    soft.symlink_to(db)
    first = SteeringLock(Repository(f"sqlite:///{db}"))
    assert first.acquire()
    for name in (hard, soft):
        other = Repository(f"sqlite:///{name}")
        assert not SteeringLock(other).acquire(), name
        other.close()
    first.release()
    # the lock's holder writes (its key): SQLite's WAL files are named by path, so two names
    # of one file must not be written by two open engines at once
    first.repo.close()
    via_link = SteeringLock(Repository(f"sqlite:///{hard}"))
    assert via_link.acquire()
    assert not SteeringLock(Repository(f"sqlite:///{db}")).acquire()
    via_link.release()


def test_the_sqlite_lock_survives_the_bookkeeping_closing_its_connections(tmp_path: Path) -> None:
    """A POSIX lock would go when SQLite closes any of its descriptors of the file; a steering
    keeps using (and closing) connections while it holds the lock."""
    url = f"sqlite:///{tmp_path / 'b.db'}"
    repo = Repository(url)
    lock = SteeringLock(repo)
    assert lock.acquire()
    repo.tasks()
    repo.engine.dispose()  # closes every pooled connection, so every descriptor SQLite held
    repo.tasks()
    assert not SteeringLock(Repository(url)).acquire()
    lock.release()
