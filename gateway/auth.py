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


class RepositoryTokens:
    """A ``TokenLookup`` over a ``gridhpo.bookkeeping.Repository``, cached ``ttl`` seconds per task."""

    def __init__(self, repo: _Tasks, ttl: float = TOKEN_TTL) -> None:
        self.repo = repo
        self.ttl = ttl
        self._cache: dict[int, tuple[float, str | None, float | None]] = {}
        self._lock = threading.Lock()

    def cached(self, task_id: int) -> tuple[bool, str | None]:
        """(True, the token) when the cache answers without the database (the gateway then
        checks a request without handing it to a thread), else (False, None)."""
        with self._lock:
            hit = self._cache.get(task_id)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return False, None
        return True, _valid(hit[1], hit[2])

    def __call__(self, task_id: int) -> str | None:
        known, token = self.cached(task_id)
        if known:
            return token
        row = self.repo.find_task(task_id)
        token, expires = (row.token, row.token_expires_at) if row is not None else (None, None)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[task_id] = (time.monotonic(), token, expires)
        return _valid(token, expires)


def _valid(token: str | None, expires: float | None) -> str | None:
    return None if token is None or (expires is not None and time.time() >= expires) else token


def repository_tokens(repo: _Tasks, ttl: float = TOKEN_TTL) -> RepositoryTokens:
    return RepositoryTokens(repo, ttl)
