"""What the API does with a user's tasks, importable and tested without HTTP: submit,
status, results, cancel, the pilot token and the report, each as ``gridhpo`` does locally."""
from __future__ import annotations

import math
import re
from typing import Any

from gridhpo.bookkeeping.repository import Repository, TaskRow
from gridhpo.errors import ConfigError, GridHPOError
from gridhpo.service.accounts import Accounts, UserRow
from gridhpo.steering.objectives import goals_of
from gridhpo.steering.optimisers import describe
from gridhpo.steering.reports import results, status_rows
from gridhpo.steering.submission import pilot_token as issue_token
from gridhpo.steering.taskfile import check_name, parse_duration, parse_task
from gridhpo.tokens import new_token

SOURCE = "task"  # how a task sent through the API is named in its validation errors
_FIELD = re.compile(r"^task: ([A-Za-z_][\w.\[\]-]*): ")


class StateError(GridHPOError):
    """An action the task's state does not allow (cancel an ended task: HTTP 409)."""


def error_field(message: str, default: str) -> str:
    """The field a task-file validation error names (``task.budget.max_points``)."""
    m = _FIELD.match(message)
    return f"task.{m.group(1)}" if m else default


def submit(accounts: Accounts, user: UserRow, raw: dict[str, Any], name: str | None) -> tuple[int, str]:
    """Validate a task (a task file as a mapping) with the task-file loader and record it,
    owned by ``user``; nothing is recorded when it is refused."""
    spec = parse_task(raw, SOURCE)
    if name is not None:
        check_name(name, "name")
    data = spec.to_dict()
    data["name"] = chosen = name or spec.name
    return accounts.create_task(user, chosen, data, new_token()), chosen


STATUS_FIELDS = ("id", "name", "state", "points", "queued", "running", "stale", "resuming", "paused", "finished",
                 "stopped", "failed", "best")


def status(repo: Repository, tasks: list[TaskRow], detail: bool = False) -> list[dict[str, Any]]:
    """The rows of ``gridhpo status`` as mappings; ``detail`` adds the message and pilots."""
    header, rows = status_rows(repo, tasks)
    assert tuple(header) == STATUS_FIELDS, header
    out = []
    for task, row in zip(tasks, rows, strict=True):
        item = dict(zip(header, row, strict=True))
        item["message"] = task.message
        # what backend: auto chose, with its reason, as `gridhpo status TASK` shows it
        item["optimiser"] = describe(task.spec["optimiser"])
        sites: list[str] = []
        count = 0
        if detail:
            pilots = repo.pilots(task.id)
            count, sites = len(pilots), sorted({p.site for p in pilots})
        item["pilots"], item["sites"] = count, sites
        out.append(item)
    return out


def task_results(repo: Repository, task: TaskRow, sort: str = "number", number: int | None = None) -> dict[str, Any]:
    """``gridhpo results``'s rows, sorted as it sorts them, with what its messages need."""
    rows = results(repo, task, number)
    goals = goals_of(task.spec)
    mode = goals.objectives[0].mode
    if sort == "value":
        sign = 1 if mode == "min" else -1
        rows.sort(key=lambda r: (r["value"] is None, sign * (r["value"] if r["value"] is not None else math.inf)))
    total = sum(repo.counts(task.id).values())
    return {"id": task.id, "name": task.name, "mode": mode, "total": total, "points": rows,
            "objective": goals.to_stored(), "constraints": [c.to_dict() for c in goals.constraints]}


def lineage(repo: Repository, task: TaskRow) -> dict[str, Any]:
    """`gridhpo results --lineage`'s data: the objective's mode and every member's segments."""
    from gridhpo.steering.lineage import mode_of, segments

    return {"mode": mode_of(task), "segments": segments(repo, task)}


def cancel(repo: Repository, task: TaskRow) -> TaskRow:
    if task.state != "active":
        raise StateError(f"task {task.name!r} is {task.state}, not active")
    repo.set_task_state(task.id, "cancelled", "cancelled by the user")
    return repo.task(task.id)


def pilot_token(repo: Repository, task: TaskRow, revoke: bool, expires: str | None) -> dict[str, Any]:
    """The task's pilot token as ``gridhpo token`` gives it: replaced with ``revoke``, given an
    expiry with ``expires`` (a duration such as ``12h``)."""
    value, expires_at = issue_token(repo, task, revoke, None if expires is None else parse_duration(expires, "expires"))
    from gridhpo.steering.keys import pilot_credential

    # with the verifying key of the steering that signs (which may run elsewhere: --no-steer),
    # as `gridhpo token` prints it: pilots check what they run
    return {"id": task.id, "name": task.name, "token": pilot_credential(repo, value), "expires_at": expires_at,
            "replaced": revoke}


def report_html(repo: Repository, tasks: list[TaskRow], top_k: int, table_k: int, importance: str) -> str:
    """The HTML report of ``gridhpo plot`` for these tasks, as text."""
    from gridhpo.plots import data as plot_data
    from gridhpo.plots.report import payload, render_html

    if not tasks:
        raise ConfigError("name at least one task")
    loaded = [plot_data.load(repo, t) for t in tasks]
    return render_html(payload(loaded, top_k, table_k, importance), "gridhpo: " + ", ".join(d.name for d in loaded))



def figure_png(repo: Repository, task: TaskRow, figure: str, top_k: int, importance: str) -> bytes:
    """One PNG figure of ``gridhpo plot --png`` for this task (drawn here: a client needs no
    plot library)."""
    from gridhpo.plots import data as plot_data
    from gridhpo.plots.png import figure_png as draw

    return draw(plot_data.load(repo, task), figure, top_k, importance)
