"""What ``gridhpo status`` and ``gridhpo results`` show, as data and as text."""
from __future__ import annotations

import csv
import io
import json
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from gridhpo.steering import lineage
from gridhpo.steering.fronts import front_size
from gridhpo.steering.objectives import goals_of
from gridhpo.steering.tables import render_table

if TYPE_CHECKING:  # the formatting serves `gridhpo --server` too, on a light install without SQLAlchemy
    from gridhpo.bookkeeping.repository import Repository, TaskRow

RESULT_FORMATS = ("table", "csv", "json")


def results(repo: Repository, task: TaskRow, number: int | None = None) -> list[dict[str, Any]]:
    """Every point of a task (or only point ``number``) with its attempts, in point order."""
    points = repo.points(task.id, number=number)
    only = [p.id for p in points] if number is not None else None
    attempts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    saved: dict[int, list[dict[str, Any]]] = defaultdict(list)
    restored: dict[int, dict[str, Any]] = {}
    for c in repo.checkpoints(task.id, point_ids=only):
        info = {"sequence": c.sequence, "key": c.key, "size": c.size, "sha256": c.sha256,
                "attempt": c.source_attempt, "saved_at": c.saved_at}
        if c.kind == "restored":
            restored[c.attempt_id] = info
        else:
            saved[c.attempt_id].append(info)
    for a in (repo.attempts(point_ids=only) if only is not None else repo.attempts(task_id=task.id)):
        attempts[a.point_id].append({
            "number": a.number, "state": a.state, "pilot": a.pilot_id, "site": a.site,
            "started_at": a.started_at, "ended_at": a.ended_at, "end_reason": a.end_reason,
            "value": a.value, "message": a.message, "stderr_tail": a.stderr_tail,
            "restored_from": restored.get(a.id), "checkpoints": saved.get(a.id, []),
        })
    reached: dict[int, float] = {}  # the highest resource (e.g. epoch) each point reported
    resource = task.spec.get("early_stopping", {}).get("resource", "step")
    for m in repo.metrics(task.id, point_ids=only):
        step = m.values.get(resource, m.step)
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            reached[m.point_id] = max(reached.get(m.point_id, step), step)
    rows = [
        {"id": p.id, "number": p.number, "params": p.params, "state": p.state, "value": p.value,
         "message": p.message, "reached": reached.get(p.id), "attempts": attempts.get(p.id, []),
         # multi-objective search or constraints: each objective's and constraint's value, and
         # whether the constraints held (None otherwise)
         "metric_values": p.metric_values, "feasible": p.feasible}
        for p in points
    ]
    lineage.attach(repo, task, rows)  # a population member's segments (population-based training)
    return rows


REASON_WIDTH = 80  # the table's reason column; csv and json carry the whole text


def failure_reason(row: dict[str, Any]) -> tuple[str, str]:
    """Why a point ended as it did: (message, stderr tail), from the point and its last
    attempt that said something (a finished point after a failed attempt keeps its history)."""
    message = row["message"] or ""
    stderr = ""
    for a in reversed(row["attempts"]):
        if not message and a["message"]:
            message = a["message"]
        if not stderr and a["stderr_tail"]:
            stderr = a["stderr_tail"]
    return message, stderr


def short_reason(message: str, stderr: str, width: int = REASON_WIDTH) -> str:
    """One line: the message and the last non-empty line of stderr, cut to ``width``."""
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    text = " | ".join(part for part in (" ".join(message.split()), last) if part)
    return text if len(text) <= width else text[:width - 1] + "…"


def format_results(rows: list[dict[str, Any]], fmt: str, mode: str = "min") -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    names: list[str] = []
    for r in rows:
        for k in r["params"]:
            if k not in names:
                names.append(k)
    header = ["number", "state", "value", "attempts", *names, "reached", "history"]
    table = [
        [r["number"], r["state"] + (" (infeasible)" if r.get("feasible") is False else ""),
         "" if r["value"] is None else f"{r['value']:.6g}", len(r["attempts"]),
         *[_cell(r["params"].get(n, "")) for n in names], "" if r.get("reached") is None else f"{r['reached']:g}",
         attempt_history(r["attempts"])]
        for r in rows
    ]
    reasons = [failure_reason(r) for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([*header, "message", "stderr_tail"])
        w.writerows([*line, message, stderr] for line, (message, stderr) in zip(table, reasons, strict=True))
        return buf.getvalue()
    return render_table([*header, "reason"],
                        [[*line, short_reason(*reason)] for line, reason in zip(table, reasons, strict=True)])


ATTEMPT_FIELDS = ("pilot", "site", "state", "end_reason", "started_at", "ended_at", "value", "message",
                  "stderr_tail")


def format_point(row: dict[str, Any], fmt: str) -> str:
    """One point with every attempt in full (``gridhpo results TASK --point N``)."""
    if fmt == "json":
        return json.dumps(row, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["point", "attempt", *ATTEMPT_FIELDS, "restored_from", "checkpoints"])
        for a in row["attempts"]:
            w.writerow([row["number"], a["number"], *["" if a[k] is None else a[k] for k in ATTEMPT_FIELDS],
                        "" if a["restored_from"] is None else a["restored_from"]["sequence"], len(a["checkpoints"])])
        return buf.getvalue()
    value = "" if row["value"] is None else f" value {row['value']:.6g}"
    lines = [f"point {row['number']}: {row['state']}{value}", f"params: {json.dumps(row['params'])}"]
    if row["message"]:
        lines.append(f"message: {row['message']}")
    if row.get("reached") is not None:
        lines.append(f"reached: {row['reached']:g}")
    if not row["attempts"]:
        lines.append("no attempt yet")
    for a in row["attempts"]:
        lines.append("")
        lines.append(f"attempt {a['number']}: {a['state']}" + (f" ({a['end_reason']})" if a["end_reason"] else ""))
        lines.append(f"  pilot: {a['pilot']}  site: {a['site']}")
        lines.append(f"  started: {_when(a['started_at'])}  ended: {_when(a['ended_at'])}"
                     + ("" if a["ended_at"] is None or a["started_at"] is None
                        else f"  ({a['ended_at'] - a['started_at']:.1f} s)"))
        if a["value"] is not None:
            lines.append(f"  value: {a['value']:.6g}")
        if a["restored_from"]:
            lines.append(f"  resumed from checkpoint #{a['restored_from']['sequence']}")
        if a["checkpoints"]:
            lines.append(f"  checkpoints saved: {len(a['checkpoints'])}")
        if a["message"]:
            lines.append(f"  message: {a['message']}")
        if a["stderr_tail"]:
            lines.append("  stderr tail:")
            lines.extend(f"    {line}" for line in a["stderr_tail"].rstrip("\n").splitlines())
    return "\n".join(lines)


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def attempt_history(attempts: list[dict[str, Any]]) -> str:
    """One token per attempt, ``2:interrupted<#3+2``: attempt 2 ended interrupted, started
    from checkpoint 3 and saved 2 checkpoints."""
    out = []
    for a in attempts:
        token = f"{a['number']}:{a.get('end_reason') or a['state']}"
        if a.get("restored_from"):
            token += f"<#{a['restored_from']['sequence']}"
        if a.get("checkpoints"):
            token += f"+{len(a['checkpoints'])}"
        out.append(token)
    return " ".join(out)


def _cell(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def status_rows(repo: Repository, tasks: list[TaskRow], now: float | None = None) -> tuple[list[str], list[list[Any]]]:
    """One row per task. ``stale``: running points whose pilot has not been heard of for two
    heartbeats (they become lost, and are re-queued, after ``evaluation.lost_after``)."""
    header = ["id", "name", "state", "points", "queued", "running", "stale", "resuming", "paused", "finished",
              "stopped", "failed", "best"]
    now = time.time() if now is None else now
    rows = []
    for t in tasks:
        counts = repo.counts(t.id)
        # resuming: interrupted points waiting for or running a later attempt
        pts = repo.points(t.id, ["queued", "running"]) if counts.get("queued") or counts.get("running") else []
        resuming = sum(1 for p in pts if p.attempt > 1)
        running = {p.id: p.attempt for p in pts if p.state == "running"}
        silent_for = 2 * float(t.spec.get("evaluation", {}).get("heartbeat") or 10.0)
        stale = sum(1 for a in (repo.attempts(point_ids=list(running)) if running else [])
                    if running.get(a.point_id) == a.number and now - a.last_seen > silent_for)
        best = best_point(repo, t)
        goals = goals_of(t.spec)
        # several objectives have no one best point: the size of the Pareto front instead
        best_cell = f"front {front_size(repo, t, goals)}" if goals.multi else "" if best is None else f"{best[1]:.6g}"
        rows.append([t.id, t.name, t.state, f"{sum(counts.values())}/{t.spec['budget']['max_points']}",
                     counts.get("queued", 0), counts.get("running", 0), stale, resuming, counts.get("paused", 0),
                     counts.get("finished", 0), counts.get("stopped", 0), counts.get("failed", 0),
                     best_cell])
    return header, rows



def best_point(repo: Repository, task: TaskRow) -> tuple[int, float, dict[str, Any]] | None:
    """(number, value, params) of the best finished feasible point (by the first objective), or None."""
    maximise = goals_of(task.spec).objectives[0].mode == "max"
    best = None
    for p in repo.points(task.id, ["finished"]):
        if p.value is None or p.feasible is False:  # an infeasible point is never the best
            continue
        if best is None or (p.value > best[1] if maximise else p.value < best[1]):
            best = (p.number, p.value, p.params)
    return best
