"""A task's progress from the bookkeeping: what ``gridhpo run`` prints while another steering serves."""
from __future__ import annotations

from typing import Any

from gridhpo.bookkeeping.repository import Repository
from gridhpo.steering.reports import best_point
from gridhpo.steering.taskfile import TaskSpec


def progress_from_db(repo: Repository, task_id: int) -> dict[str, Any]:
    row = repo.task(task_id)
    spec = TaskSpec.from_dict(row.spec)
    counts = repo.counts(task_id)
    best = best_point(repo, row)
    return {
        "task": row.name, "id": task_id, "max_points": spec.budget.max_points,
        "created": sum(counts.values()), "finished": counts.get("finished", 0), "failed": counts.get("failed", 0),
        "queued": counts.get("queued", 0), "running": counts.get("running", 0),
        "best_value": best[1] if best else None, "best_number": best[0] if best else None,
    }
