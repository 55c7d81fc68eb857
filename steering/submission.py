"""Recording a new task (``gridhpo submit``, ``gridhpo run`` and the tests that submit
directly) and handing out its pilot token (``gridhpo token`` and the service's API)."""
from __future__ import annotations

import time

from gridhpo.bookkeeping.repository import Repository, TaskRow
from gridhpo.steering.taskfile import TaskSpec, check_name
from gridhpo.tokens import new_token


def submit(repo: Repository, spec: TaskSpec, name: str | None = None, unique: bool = False) -> tuple[int, str]:
    """Record a new active task; with ``unique`` a taken name gets a ``-2``, ``-3``... suffix."""
    if name is not None:
        check_name(name, "--name")
    base = name or spec.name
    candidate = base
    for n in range(2, 10_000):
        if not unique or repo.find_task(candidate) is None:
            break
        candidate = f"{base}-{n}"
    data = spec.to_dict()
    data["name"] = candidate
    return repo.create_task(candidate, data, token=new_token()), candidate


def pilot_token(repo: Repository, task: TaskRow, revoke: bool, expires_in: float | None) -> tuple[str, float | None]:
    """The task's pilot token and its expiry (None: never): a new one with ``revoke`` (or when
    it has none), expiring ``expires_in`` seconds from now when given; stored when changed."""
    value, expires_at = task.token, task.token_expires_at
    if revoke or value is None:
        value, expires_at = new_token(), None
    if expires_in is not None:
        expires_at = time.time() + expires_in
    if (value, expires_at) != (task.token, task.token_expires_at):
        repo.set_token(task.id, value, expires_at)
    return value, expires_at
