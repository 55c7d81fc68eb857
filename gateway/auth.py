"""Which pilot token opens a task: looked up in the bookkeeping, briefly cached.

The gateway answers a wrong, replaced or expired token with 401 before it touches the broker,
judged on the bookkeeping's token of the moment like the steering's own check
(``steering/pilots.py``). Lookups are cached a few seconds per task, unknown tasks included,
so a flood of requests with made-up task ids costs the database one query per id and
``TOKEN_TTL``; `gridhpo token --revoke` takes effect within that time.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from gridhpo.tokens import same

TOKEN_TTL = 2.0  # seconds a task's token is cached
MAX_CACHED = 10_000  # tasks remembered at most (made-up ids included): the cache is cleared beyond

TokenLookup = Callable[[int], "str | None"]  # a task's valid token now; None: no such task, no token, or expired


class _Row(Protocol):
    @property
    def token(self) -> str | None: ...

    @property
    def token_expires_at(self) -> float | None: ...


class _Tasks(Protocol):
    def find_task(self, ref: str | int) -> _Row | None: ...


def repository_tokens(repo: _Tasks, ttl: float = TOKEN_TTL) -> TokenLookup:
    """A ``TokenLookup`` over a ``gridhpo.bookkeeping.Repository``."""
    cache: dict[int, tuple[float, str | None, float | None]] = {}
    lock = threading.Lock()

    def lookup(task_id: int) -> str | None:
        now = time.monotonic()
        with lock:
            hit = cache.get(task_id)
        if hit is None or now - hit[0] > ttl:
            row = repo.find_task(task_id)
            token, expires = (row.token, row.token_expires_at) if row is not None else (None, None)
            with lock:
                if len(cache) >= MAX_CACHED:
                    cache.clear()
                cache[task_id] = (now, token, expires)
        else:
            _, token, expires = hit
        if token is None or (expires is not None and time.time() >= expires):
            return None
        return token

    return lookup


def authorised(lookup: TokenLookup, task_id: int, presented: str) -> bool:
    token = lookup(task_id)
    return token is not None and bool(presented) and same(presented, token)
