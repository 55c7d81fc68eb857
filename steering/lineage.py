"""The lineage of a population-based training task, read from the bookkeeping: every
member's segments (for ``gridhpo results TASK --format json``), and the best member's
hyperparameter schedule (``gridhpo results TASK --lineage``): the segments that made its
final weights, through each exploit back into the parent it copied, oldest first.

A schedule can be replayed as a new task: ``schedule_steps`` gives it as (from step,
config) pairs, which examples/pbt/replay.py applies to one fresh run.
"""
from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

from gridhpo.steering.tables import render_table

if TYPE_CHECKING:
    from gridhpo.bookkeeping.repository import Repository, TaskRow


def segments(repo: Repository, task: TaskRow) -> list[dict[str, Any]]:
    """Every member's segments, by member and segment."""
    return [{"member": s.member, "segment": s.segment, "step": s.step, "until": s.until,
             "config_before": s.config_before, "config_after": s.config_after, "parent": s.parent,
             "parent_checkpoint": s.parent_checkpoint, "restore": s.restore, "restored_at": s.restored_at,
             "value": s.end_value, "checkpoint": s.end_checkpoint, "started_at": s.started_at,
             "ended_at": s.ended_at} for s in repo.lineage(task.id)]


def attach(repo: Repository, task: TaskRow, rows: list[dict[str, Any]]) -> None:
    """Give each point row of a PBT task its member's segments (``lineage``)."""
    if task.spec.get("early_stopping", {}).get("scheduler") != "pbt":
        return
    by_member: dict[int, list[dict[str, Any]]] = {}
    for s in segments(repo, task):
        by_member.setdefault(s["member"], []).append(s)
    for r in rows:
        r["lineage"] = by_member.get(r["number"], [])


def mode_of(task: TaskRow) -> str:
    """The mode (min or max) of the task's objective, the first of several: PBT takes one."""
    from gridhpo.steering.objectives import goals_of

    return goals_of(task.spec).objectives[0].mode


def best_member(mode: str, segs: list[dict[str, Any]]) -> int | None:
    """The member whose last segment ended best (its final value, ``mode`` min or max), None
    before any ended."""
    sign = 1.0 if mode == "min" else -1.0
    last: dict[int, dict[str, Any]] = {}
    for s in segs:
        last[s["member"]] = s
    ended = [s for s in last.values() if s["value"] is not None and s["ended_at"] is not None]
    if not ended:
        return None
    top = max(s["until"] for s in ended)
    best = min((s for s in ended if s["until"] == top), key=lambda s: (sign * s["value"], s["member"]))
    return int(best["member"])


def schedule(segs: list[dict[str, Any]], member: int) -> list[dict[str, Any]]:
    """The segments that made ``member``'s final state, oldest first, each with the steps it
    covered (``step`` to ``until``) and the member that trained them."""
    out: list[dict[str, Any]] = []
    until, current = math.inf, member
    while True:
        own = sorted((s for s in segs if s["member"] == current and s["step"] < until), key=lambda s: s["segment"])
        if not own:
            break
        cut = next((s for s in reversed(own) if s["parent"] is not None), None)
        keep = [dict(s, until=min(s["until"], until)) for s in own if cut is None or s["segment"] >= cut["segment"]]
        out = keep + out
        if cut is None:
            break
        until, current = cut["step"], cut["parent"]
    return out


def schedule_steps(sched: list[dict[str, Any]]) -> list[tuple[float, dict[str, Any]]]:
    """The schedule as (from step, config), a new entry only where the config changes."""
    out: list[tuple[float, dict[str, Any]]] = []
    for s in sched:
        if not out or out[-1][1] != s["config_after"]:
            out.append((s["step"], s["config_after"]))
    return out


def format_schedule(mode: str, segs: list[dict[str, Any]], fmt: str) -> str:
    """The best member's schedule as a table, CSV or JSON (locally and through the service)."""
    member = best_member(mode, segs)
    if member is None:
        return "no member has ended a segment yet" if fmt == "table" else ("[]" if fmt == "json" else "")
    sched = schedule(segs, member)
    if fmt == "json":
        return json.dumps({"member": member, "schedule": sched}, indent=1)
    names = sorted({k for s in sched for k in s["config_after"]})
    header = ["from", "to", "member", *names, "value", "copied"]
    table = [[f"{s['step']:g}", f"{s['until']:g}", s["member"], *[_cell(s["config_after"].get(n)) for n in names],
              "" if s["value"] is None else f"{s['value']:.6g}",
              "" if s["parent"] is None else f"from member {s['parent']} at {s['step']:g}"] for s in sched]
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows([header, *table])
        return buf.getvalue()
    return f"best member: {member}\n" + render_table(header, table)


def _cell(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else ("" if v is None else str(v))
