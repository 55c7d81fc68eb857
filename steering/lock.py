"""One steering per bookkeeping: two would hand out and count the same points twice.

SQLite: an exclusive lock on the database file itself, so it follows the file's identity
(device and inode): hard links, symlinks and bind mounts of one file share it, where a lock
file named after the path did not. It is an open-file-description lock on a byte SQLite never
locks (its own locks are POSIX locks on bytes 0x40000000-0x400001ff, which a whole-file lock
would block, as ``flock`` does on NFS), and unlike a POSIX lock it survives SQLite closing its
own descriptors of the file. PostgreSQL: a session-level advisory lock held on a dedicated
connection. The lock dies with its process, so a steering killed with SIGKILL never blocks its
successor.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from gridhpo.bookkeeping.repository import Repository
from gridhpo.errors import BookkeepingError

log = logging.getLogger(__name__)
_PG_KEY = 0x67726964  # "grid"
_SQLITE_BYTE = 0x40000400  # in SQLite's lock-byte page (from 0x40000000), past its 512 lock bytes


class SteeringLock:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._file: Any = None
        self._conn: Any = None

    def acquire(self) -> bool:
        """Take the lock; the steering that holds it records its verifying key (steering/keys.py)."""
        if not self._take():
            return False
        from gridhpo.steering.keys import record

        try:
            record(self.repo)
        except BaseException:
            self.release()
            raise
        return True

    def _take(self) -> bool:
        engine = self.repo.engine
        if engine.dialect.name == "sqlite":
            db = engine.url.database
            if not db or db == ":memory:":
                return True
            self._file = _lock_sqlite(Path(db).expanduser())
            return self._file is not None
        if engine.dialect.name == "postgresql":
            return self._acquire_pg()
        log.warning("no steering lock for %s databases: run one steering only", engine.dialect.name)
        return True

    def _acquire_pg(self) -> bool:
        conn = self.repo.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_KEY}).scalar())
        conn.commit()
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def verify(self, patience: float = 120.0) -> None:
        """Raise BookkeepingError when the lock is lost for good. A PostgreSQL restart ends the
        session that held it: the lock is taken again as soon as the database is back, unless
        another steering took it meanwhile."""
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return
        except SQLAlchemyError as exc:
            log.warning("the steering lock's database session ended (%s); taking the lock again",
                        str(exc).splitlines()[0])
        try:
            self._conn.invalidate()
            self._conn.close()
        except SQLAlchemyError as exc:
            log.debug("closing the dead lock session failed: %s", exc)
        self._conn = None
        deadline = time.monotonic() + patience
        delay = 0.5
        while True:
            try:
                if self._acquire_pg():
                    log.info("steering lock taken again")
                    return
                raise BookkeepingError("another steering took the lock while the database was away: this one stops")
            except OperationalError as exc:
                if time.monotonic() > deadline:
                    raise BookkeepingError(f"the database did not come back within {patience:.0f}s: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # the last descriptor of its open file description: the lock goes
            self._file = None
        if self._conn is not None:
            self._conn.invalidate()  # a real close ends the session, which releases the lock
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SteeringLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_sqlite(path: Path) -> Any:
    """The database file, opened and locked; None when another steering holds it."""
    try:
        f = path.open("r+b")
    except OSError as exc:
        raise BookkeepingError(f"{path}: cannot open the database to lock it: {exc.strerror}") from exc
    try:
        if hasattr(fcntl, "F_OFD_SETLK"):
            # struct flock {short l_type, l_whence; off_t l_start, l_len; pid_t l_pid} (0 for OFD)
            fcntl.fcntl(f.fileno(), fcntl.F_OFD_SETLK, struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET,
                                                                    _SQLITE_BYTE, 1, 0))
        else:  # no OFD locks (not Linux): flock on the file
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        f.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise BookkeepingError(f"{path}: cannot lock the database for the steering: {exc.strerror}") from exc
    return f
