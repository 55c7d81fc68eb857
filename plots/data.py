"""What the figures show, as plain data: one function per figure, no plotting library.

``load(repo, ref)`` reads a task's points, attempts, metric reports, pilots and (where the
bookkeeping records them) checkpoints once; every figure function then works on that
snapshot and returns lists, dicts and floats that the HTML report, the PNG export, the
dashboard and the tests all read. Times are seconds since the task was created.
"""
from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from gridhpo.bookkeeping.repository import Repository, TaskRow
from gridhpo.steering import lineage, optimisers
from gridhpo.steering.objectives import Goals, goals_of

log = logging.getLogger(__name__)

# Outcome of one attempt's learning curve, in legend order.
OUTCOMES = ("finished", "resumed", "stopped", "paused", "interrupted", "failed", "running")


@dataclass(frozen=True)
class ParamInfo:
    """A search-space parameter as the figures need it."""

    name: str
    kind: str  # float, int, categorical, fixed
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def categorical(self) -> bool:
        return self.kind in ("categorical", "fixed")


@dataclass
class AttemptRec:
    id: int
    point_id: int
    number: int
    state: str
    end_reason: str | None
    pilot: str | None
    site: str | None
    start: float
    end: float | None
    last_seen: float
    value: float | None
    message: str | None


@dataclass
class PointRec:
    id: int
    number: int
    params: dict[str, Any]
    state: str
    value: float | None
    message: str | None
    created: float
    ended: float | None
    attempts: list[AttemptRec] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    # multi-objective search or constraints: each objective's and constraint's value, feasibility
    metric_values: dict[str, float] | None = None
    feasible: bool | None = None


@dataclass
class TaskData:
    """One task's bookkeeping, read once; times relative to the task's creation."""

    task: TaskRow
    params: list[ParamInfo]
    points: list[PointRec]
    metrics: dict[int, list[tuple[float, dict[str, Any]]]]  # attempt id -> [(step, values)]
    pilot_sites: dict[str, str]
    lineage: list[dict[str, Any]] = field(default_factory=list)  # population-based training's segments

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def metric(self) -> str:
        return self.goals.objectives[0].metric

    @property
    def maximise(self) -> bool:
        return self.goals.objectives[0].mode == "max"

    @property
    def goals(self) -> Goals:
        return goals_of(self.task.spec)

    def finished(self) -> list[PointRec]:
        """Points with an objective value, in point order."""
        return [p for p in self.points if p.state == "finished" and _finite(p.value)]

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximise else a < b

    def ranked(self) -> list[PointRec]:
        """Finished feasible points, best first (ties by point number): an infeasible one is never best."""
        sign = -1.0 if self.maximise else 1.0
        return sorted([p for p in self.finished() if p.feasible is not False],
                      key=lambda p: (sign * float(p.value or 0.0), p.number))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def param_infos(spec: dict[str, Any]) -> list[ParamInfo]:
    out = []
    for name, p in (spec.get("search_space") or {}).items():
        kind = str(p.get("type", "float"))
        if kind == "categorical":
            out.append(ParamInfo(name, kind, choices=tuple(p.get("choices", ()))))
        elif kind == "fixed":
            out.append(ParamInfo(name, kind, choices=(p.get("value"),)))
        else:
            out.append(ParamInfo(name, kind, log=bool(p.get("log", False))))
    return out


def load(repo: Repository, ref: str | int | TaskRow) -> TaskData:
    """Read one task's bookkeeping (a task row, id or name)."""
    task = ref if isinstance(ref, TaskRow) else repo.task(ref)
    t0 = task.created_at
    points = [
        PointRec(p.id, p.number, dict(p.params or {}), p.state, p.value, p.message, p.created_at - t0,
                 None if p.ended_at is None else p.ended_at - t0, metric_values=p.metric_values, feasible=p.feasible)
        for p in repo.points(task.id)
    ]
    by_id = {p.id: p for p in points}
    for a in repo.attempts(task_id=task.id):
        p = by_id.get(a.point_id)
        if p is None:
            continue
        p.attempts.append(AttemptRec(
            a.id, a.point_id, a.number, a.state, a.end_reason, a.pilot_id, a.site, a.started_at - t0,
            None if a.ended_at is None else a.ended_at - t0, a.last_seen - t0, a.value, a.message))
    metrics: dict[int, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for m in repo.metrics(task.id):
        values = m.values if isinstance(m.values, dict) else {}
        metrics[m.attempt_id].append((float(m.step) if m.step is not None else float(m.seq), values))
    for point_id, rec in _checkpoints(repo, task.id, t0).items():
        if point_id in by_id:
            by_id[point_id].checkpoints = rec
    sites = {str(p.id): str(p.site) for p in repo.pilots(task.id)}
    pbt = task.spec.get("early_stopping", {}).get("scheduler") == "pbt"
    return TaskData(task, param_infos(task.spec), points, dict(metrics), sites,
                    lineage.segments(repo, task) if pbt else [])


def _checkpoints(repo: Repository, task_id: int, t0: float) -> dict[int, list[dict[str, Any]]]:
    """Checkpoint records (kind saved or restored) by point id, times relative to ``t0``.

    Checkpoint bookkeeping is newer than the rest: a repository without it shows none,
    and rows are read by field name, missing fields left out.
    """
    reader = getattr(repo, "checkpoints", None)
    if reader is None:
        log.debug("this bookkeeping records no checkpoints")
        return {}
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in reader(task_id):
        mapping = r._mapping if hasattr(r, "_mapping") else dict(r)
        if mapping.get("point_id") is None:
            continue
        rec = {k: mapping[k] for k in ("attempt_id", "kind", "sequence", "size", "source_attempt", "key")
               if mapping.get(k) is not None}
        for k in ("at", "saved_at"):
            if _finite(mapping.get(k)):
                rec[k] = float(mapping[k]) - t0
        rec.setdefault("kind", "saved")
        out[int(mapping["point_id"])].append(rec)
    return dict(out)


# ---------------------------------------------------------------------------- figures


def history(d: TaskData) -> dict[str, Any]:
    """Each finished point's value and the best so far, by point number and by time."""
    fin = d.finished()
    numbers = [p.number for p in fin]
    values = [float(p.value) for p in fin if p.value is not None]
    best_by_number = _running_best(d, values, [p.feasible is not False for p in fin])
    by_time = sorted((p for p in fin if p.ended is not None), key=lambda p: (p.ended, p.number))
    times = [float(p.ended) for p in by_time if p.ended is not None]
    time_values = [float(p.value) for p in by_time if p.value is not None]
    others = [p for p in d.points if p.state in ("failed", "stopped")]
    return {
        "numbers": numbers, "values": values, "best": best_by_number,
        "times": times, "time_values": time_values, "time_numbers": [p.number for p in by_time],
        "best_by_time": _running_best(d, time_values, [p.feasible is not False for p in by_time]),
        "failed_numbers": [p.number for p in others if p.state == "failed"],
        "stopped": [(p.number, p.value) for p in others if p.state == "stopped"],
        # finished but outside a constraint: drawn apart, never the best so far
        "infeasible": [(p.number, p.value) for p in fin if p.feasible is False],
    }


def _running_best(d: TaskData, values: list[float], feasible: list[bool]) -> list[float | None]:
    """The best so far after each value; an infeasible point never counts (None before any)."""
    out: list[float | None] = []
    best: float | None = None
    for v, ok in zip(values, feasible, strict=True):
        if ok and (best is None or d.better(v, best)):
            best = v
        out.append(best)
    return out


def encode(info: ParamInfo, value: Any) -> float | None:
    """A parameter value on its figure axis: log10 for log ranges, the choice index for categories."""
    if value is None:
        return None
    if info.categorical:
        for i, c in enumerate(info.choices):
            if type(c) is type(value) and c == value:
                return float(i)
        return None
    if not _finite(value):
        return None
    if info.log:
        return math.log10(value) if value > 0 else None
    return float(value)


# Parallel coordinates draw every line with WebGL; past a few thousand lines a laptop
# without a GPU takes seconds per redraw, so larger tasks show the best half of this many
# lines and a fixed-seed random sample of the rest.
PARALLEL_MAX_LINES = 3000


def parallel(d: TaskData, top_k: int = 10, max_lines: int = PARALLEL_MAX_LINES) -> dict[str, Any]:
    """Finished points on one axis per parameter plus the objective; the top K flagged."""
    ranked = d.ranked()
    fin = d.finished()
    total = len(fin)
    if total > max_lines:
        keep = {p.number for p in ranked[:max_lines // 2]}
        rest = [p.number for p in ranked[max_lines // 2:]]
        keep.update(random.Random(0).sample(rest, max_lines - len(keep)))
        fin = [p for p in fin if p.number in keep]
    top = {p.number for p in ranked[:top_k]}
    dims = []
    for info in d.params:
        dim: dict[str, Any] = {"name": info.name, "kind": info.kind, "log": info.log,
                               "values": [encode(info, p.params.get(info.name)) for p in fin]}
        if info.categorical:
            dim["choices"] = [str(c) for c in info.choices]
        dims.append(dim)
    values = [float(p.value) for p in fin if p.value is not None]
    return {
        "dimensions": dims, "objective": d.metric, "values": values, "numbers": [p.number for p in fin],
        "top": [p.number in top for p in fin], "top_k": min(top_k, len(fin)),
        "top_threshold": float(ranked[min(top_k, len(ranked)) - 1].value or 0.0) if ranked else None,
        "maximise": d.maximise, "total": total,
    }


def outcome(a: AttemptRec) -> str:
    """How one attempt ended, as the learning curves colour it."""
    if a.state == "finished":
        return "resumed" if a.number > 1 else "finished"
    if a.state in ("lost", "interrupted"):
        return "interrupted"
    if a.state in OUTCOMES:
        return a.state
    return "failed" if a.state == "cancelled" else "running"


def learning_curves(d: TaskData, metric: str | None = None) -> dict[str, Any]:
    """One curve per attempt that reported ``metric`` (default: the objective), by outcome."""
    name = metric or d.metric
    available: set[str] = set()
    curves = []
    for p in d.points:
        for a in p.attempts:
            reports = d.metrics.get(a.id, [])
            steps, values = [], []
            for step, vals in reports:
                available.update(k for k, v in vals.items() if _finite(v))
                v = vals.get(name)
                if isinstance(v, (int, float)) and _finite(v):
                    steps.append(step)
                    values.append(float(v))
            if steps:
                curves.append({"point": p.number, "attempt": a.number, "outcome": outcome(a),
                               "steps": steps, "values": values})
    return {"metric": name, "metrics": sorted(available), "curves": curves,
            "counts": {o: sum(1 for c in curves if c["outcome"] == o) for o in OUTCOMES}}


def slices(d: TaskData) -> list[dict[str, Any]]:
    """For each parameter, the objective of every finished point against that parameter."""
    fin = d.finished()
    out = []
    for info in d.params:
        xs, ys, nums = [], [], []
        for p in fin:
            if info.name in p.params and p.value is not None:
                xs.append(p.params[info.name] if not info.categorical else str(p.params[info.name]))
                ys.append(float(p.value))
                nums.append(p.number)
        out.append({"name": info.name, "kind": info.kind, "log": info.log, "x": xs, "y": ys, "numbers": nums,
                    "choices": [str(c) for c in info.choices]})
    return out


def timeline(d: TaskData) -> dict[str, Any]:
    """Every attempt as a bar on its pilot's row (rows grouped by site), coloured by how it ended."""
    bars: list[dict[str, Any]] = []
    for p in d.points:
        for a in p.attempts:
            pilot = a.pilot or "?"
            site = a.site or d.pilot_sites.get(pilot, "?")
            end = a.end if a.end is not None else a.last_seen
            bars.append({"attempt_id": a.id, "row": f"{site} / {pilot}", "site": site, "pilot": pilot,
                         "point": p.number, "attempt": a.number, "start": a.start, "end": max(end, a.start),
                         "state": a.state, "end_reason": a.end_reason, "resumed": a.number > 1})
    rows = sorted({str(b["row"]) for b in bars})
    row_of = {b["attempt_id"]: b["row"] for b in bars}
    checkpoints = [{"row": row_of[c["attempt_id"]], "at": c["at"], "kind": c["kind"], "point": p.number,
                    "sequence": c.get("sequence"), "size": c.get("size")}
                   for p in d.points for c in p.checkpoints if c.get("attempt_id") in row_of and "at" in c]
    return {"rows": rows, "bars": bars, "checkpoints": checkpoints,
            "states": sorted({b["state"] for b in bars}),
            "interruptions": sum(1 for b in bars if b["state"] in ("interrupted", "lost", "paused")),
            "resumes": sum(1 for b in bars if b["resumed"])}


def top_points(d: TaskData, k: int = 50) -> dict[str, Any]:
    """The K best points with their parameters, attempts and checkpoints, best first."""
    rows = []
    for rank, p in enumerate(d.ranked()[:k], start=1):
        rows.append({
            "rank": rank, "number": p.number, "value": p.value,
            "params": {i.name: p.params.get(i.name) for i in d.params},
            "attempts": len(p.attempts),
            "history": " → ".join(a.state for a in p.attempts),
            "sites": sorted({a.site for a in p.attempts if a.site}),
            "checkpoints": sum(1 for c in p.checkpoints if c.get("kind") == "saved"),
            "restores": sum(1 for c in p.checkpoints if c.get("kind") == "restored"),
            "duration": None if p.ended is None or not p.attempts else p.ended - p.attempts[0].start,
        })
    return {"columns": ["rank", "number", d.metric, *[i.name for i in d.params], "attempts", "history",
                        "checkpoints", "restores", "duration_s", "sites"], "rows": rows}


def summary(d: TaskData) -> dict[str, Any]:
    counts: dict[str, int] = defaultdict(int)
    for p in d.points:
        counts[p.state] += 1
    ranked = d.ranked()
    return {"id": d.task.id, "name": d.name, "state": d.task.state, "metric": d.metric,
            "mode": "max" if d.maximise else "min", "points": len(d.points), "counts": dict(counts),
            "best": None if not ranked else {"number": ranked[0].number, "value": ranked[0].value,
                                             "params": ranked[0].params},
            "attempts": sum(len(p.attempts) for p in d.points),
            # a task stored by hand (tests, imports) may lack the section
            "optimiser": optimisers.describe(d.task.spec["optimiser"]) if "optimiser" in d.task.spec else "unknown"}
