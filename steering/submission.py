"""Recording a new task: ``gridhpo submit``, ``gridhpo run`` and the tests that submit directly."""
from __future__ import annotations

from gridhpo.bookkeeping.repository import Repository
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
