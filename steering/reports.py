"""What ``gridhpo status`` and ``gridhpo results`` show, as data and as text."""
from __future__ import annotations

import csv
import io
import json
import time
from collections import defaultdict
from typing import Any

from gridhpo.bookkeeping.repository import Repository, TaskRow

RESULT_FORMATS = ("table", "csv", "json")


def results(repo: Repository, task: TaskRow) -> list[dict[str, Any]]:
    """Every point of a task with its attempts, in point order."""
    attempts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    saved: dict[int, list[dict[str, Any]]] = defaultdict(list)
    restored: dict[int, dict[str, Any]] = {}
    for c in repo.checkpoints(task.id):
        info = {"sequence": c.sequence, "key": c.key, "size": c.size, "sha256": c.sha256,
                "attempt": c.source_attempt, "saved_at": c.saved_at}
        if c.kind == "restored":
            restored[c.attempt_id] = info
        else:
            saved[c.attempt_id].append(info)
    for a in repo.attempts(task_id=task.id):
        attempts[a.point_id].append({
            "number": a.number, "state": a.state, "pilot": a.pilot_id, "site": a.site,
            "started_at": a.started_at, "ended_at": a.ended_at, "end_reason": a.end_reason,
            "value": a.value, "message": a.message,
            "restored_from": restored.get(a.id), "checkpoints": saved.get(a.id, []),
        })
    reached: dict[int, float] = {}  # the highest resource (e.g. epoch) each point reported
    resource = task.spec.get("early_stopping", {}).get("resource", "step")
    for m in repo.metrics(task.id):
        step = m.values.get(resource, m.step)
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            reached[m.point_id] = max(reached.get(m.point_id, step), step)
    return [
        {"id": p.id, "number": p.number, "params": p.params, "state": p.state, "value": p.value,
         "message": p.message, "reached": reached.get(p.id), "attempts": attempts.get(p.id, [])}
        for p in repo.points(task.id)
    ]


def format_results(rows: list[dict[str, Any]], fmt: str, mode: str = "min") -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    names: list[str] = []
    for r in rows:
        for k in r["params"]:
            if k not in names:
                names.append(k)
    header = ["number", "state", "value", "attempts", *names, "reached", "history", "message"]
    table = [
        [r["number"], r["state"], "" if r["value"] is None else f"{r['value']:.6g}", len(r["attempts"]),
         *[_cell(r["params"].get(n, "")) for n in names], "" if r.get("reached") is None else f"{r['reached']:g}",
         attempt_history(r["attempts"]), (r["message"] or "")[:60]]
        for r in rows
    ]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(table)
        return buf.getvalue()
    return render_table(header, table)


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


def render_table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
        rows.append([t.id, t.name, t.state, f"{sum(counts.values())}/{t.spec['budget']['max_points']}",
                     counts.get("queued", 0), counts.get("running", 0), stale, resuming, counts.get("paused", 0),
                     counts.get("finished", 0), counts.get("stopped", 0), counts.get("failed", 0),
                     "" if best is None else f"{best[1]:.6g}"])
    return header, rows



def best_point(repo: Repository, task: TaskRow) -> tuple[int, float, dict[str, Any]] | None:
    """(number, value, params) of the best finished point, or None."""
    maximise = task.spec["objective"]["mode"] == "max"
    best = None
    for p in repo.points(task.id, ["finished"]):
        if p.value is not None and (best is None or (p.value > best[1] if maximise else p.value < best[1])):
            best = (p.number, p.value, p.params)
    return best
