"""The Pareto front of a task as ``gridhpo results TASK --pareto`` and ``gridhpo status`` show it.

The front is made of the finished, feasible points that no other such point dominates (every
objective in its own direction, steering/pareto.py). An infeasible point (one that missed a
constraint) is never in it, whatever its values. The functions take the rows of
``gridhpo results`` (``reports.results``, or the same rows from the service), so the remote
commands compute the front as the local ones do.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gridhpo.steering.objectives import Goals, finite, goals_of
from gridhpo.steering.pareto import front, signed
from gridhpo.steering.tables import render_table

if TYPE_CHECKING:
    from gridhpo.bookkeeping.repository import Repository, TaskRow


def values_of(row: Mapping[str, Any], goals: Goals) -> tuple[float, ...] | None:
    """Each objective's value of a finished, feasible point (task order), None for any other."""
    if row["state"] != "finished" or row["feasible"] is False:
        return None
    if goals.plain:
        return (float(row["value"]),) if finite(row["value"]) else None
    recorded = row["metric_values"] or {}
    if not all(m in recorded and finite(recorded[m]) for m in goals.metrics):
        return None
    return tuple(float(recorded[m]) for m in goals.metrics)


def front_rows(rows: Sequence[Mapping[str, Any]], goals: Goals) -> list[Mapping[str, Any]]:
    """The rows of the front, in point order."""
    candidates = [(r, v) for r in rows if (v := values_of(r, goals)) is not None]
    kept = front([signed(v, goals.modes) for _, v in candidates])
    return [candidates[i][0] for i in kept]


def front_size(repo: Repository, task: TaskRow, goals: Goals) -> int:
    points = repo.points(task.id, ["finished"])
    rows = [{"state": p.state, "feasible": p.feasible, "value": p.value, "metric_values": p.metric_values}
            for p in points]
    return len(front_rows(rows, goals))


def format_front(rows: Sequence[Mapping[str, Any]], goals: Goals, fmt: str) -> str:
    """The front's points: each objective's value, each constraint's, and the parameters."""
    metrics = list(goals.metrics) + [c.metric for c in goals.constraints if c.metric not in goals.metrics]

    def value(r: Mapping[str, Any], m: str) -> Any:
        recorded = r["metric_values"] or {}
        return recorded[m] if m in recorded else (r["value"] if goals.plain else None)

    if fmt == "json":
        return json.dumps([{"number": r["number"], "values": {m: value(r, m) for m in metrics},
                            "params": r["params"]} for r in rows], indent=1)
    names: list[str] = []
    for r in rows:
        names += [k for k in r["params"] if k not in names]
    directions = dict(zip(goals.metrics, goals.modes, strict=True))
    header = ["number", *[f"{m} ({directions[m]})" if m in directions else m for m in metrics], *names]
    table = [[r["number"], *[_cell(value(r, m)) for m in metrics], *[_cell(r["params"].get(n, "")) for n in names]]
             for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["number", *metrics, *names])
        w.writerows(table)
        return buf.getvalue()
    return render_table(header, table)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def pareto_text(rows: Sequence[Mapping[str, Any]], spec: Mapping[str, Any], fmt: str) -> str:
    """``gridhpo results TASK --pareto``: the front of a task's results rows (``spec``: its stored
    spec, or the service's results answer, which carries ``objective`` and ``constraints``)."""
    goals = goals_of(spec)
    return format_front(front_rows(rows, goals), goals, fmt)
