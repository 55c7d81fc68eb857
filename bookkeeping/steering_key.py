"""The verifying key of the steering that holds the lock, kept in the bookkeeping.

A pilot checks that what it runs was signed by the steering (protocol/auth.py), with the key
given with its token. Whoever hands out the token (a ``gridhpo server --no-steer``, ``gridhpo
token`` on another machine) must give the key of the steering that signs, not one of its own
GRIDHPO_HOME: the steering records its key here as it takes the lock, and they read it here.
"""
from __future__ import annotations

import socket
import time
from typing import cast

from sqlalchemy import Table, insert, select, update

from gridhpo.bookkeeping.models import SteeringKey
from gridhpo.bookkeeping.repository import Repository

T_STEERING_KEY = cast(Table, SteeringKey.__table__)
_ROW = 1  # one steering holds the lock: one row


def record_steering_key(repo: Repository, public_key: str) -> None:
    """Called by the steering holding the lock (nobody else writes this row meanwhile)."""
    values = {"public_key": public_key, "host": socket.gethostname()[:255], "since": time.time()}
    with repo.engine.begin() as conn:
        if not conn.execute(update(T_STEERING_KEY).where(T_STEERING_KEY.c.id == _ROW).values(**values)).rowcount:
            conn.execute(insert(T_STEERING_KEY).values(id=_ROW, **values))


def steering_key(repo: Repository) -> tuple[str, str] | None:
    """(the verifying key, the host) of the steering that last took the lock; None: none yet."""
    with repo.engine.connect() as conn:
        row = conn.execute(select(T_STEERING_KEY.c.public_key, T_STEERING_KEY.c.host)
                           .where(T_STEERING_KEY.c.id == _ROW)).first()
    return None if row is None else (str(row.public_key), str(row.host))
