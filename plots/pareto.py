"""The report's figures of a multi-objective task: its Pareto front and how it grew.

- 2 objectives: every finished point on the two objectives' axes, the front highlighted (and
  joined as a staircase), infeasible points drawn apart as crosses;
- 3 objectives or more: parallel coordinates of the front's points, one axis per objective;
- in both cases the hypervolume of the feasible front after each finished point (by point
  number), against a reference point just worse than every feasible point in each objective
  (steering/pareto.py): it grows when a point pushes the front out, and stays flat otherwise.

A single-objective task has none of these (``figures`` returns an empty list).
"""
from __future__ import annotations

from typing import Any

from gridhpo.plots import data as D
from gridhpo.steering.objectives import Goals, finite
from gridhpo.steering.pareto import front, hypervolume, reference_point, signed

# hypervolume is computed after at most this many points (evenly spread): exact slicing in 3-d
# and more costs a front's size squared per evaluation
HV_SAMPLES = 200
FRONT = "#d62728"
OTHERS = "#1f77b4"
INFEASIBLE = "#7f7f7f"


def objective_values(p: D.PointRec, goals: Goals) -> tuple[float, ...] | None:
    if p.state != "finished" or not p.metric_values:
        return None
    if not all(m in p.metric_values and finite(p.metric_values[m]) for m in goals.metrics):
        return None
    return tuple(float(p.metric_values[m]) for m in goals.metrics)


def front_data(d: D.TaskData) -> dict[str, Any]:
    """The finished points' values, which are feasible, which form the front, and the
    hypervolume after each point: what the figures draw."""
    goals = d.goals
    done = [(p, v) for p in d.points if (v := objective_values(p, goals)) is not None]
    feasible = [(p, v) for p, v in done if p.feasible is not False]
    kept = front([signed(v, goals.modes) for _, v in feasible])
    return {"metrics": list(goals.metrics), "modes": list(goals.modes),
            "points": [{"number": p.number, "values": list(v), "feasible": p.feasible is not False} for p, v in done],
            "front": [feasible[i][0].number for i in kept],
            "hypervolume": hypervolume_history([(p.number, signed(v, goals.modes)) for p, v in feasible])}


def hypervolume_history(points: list[tuple[int, tuple[float, ...]]]) -> dict[str, list[Any]]:
    """Hypervolume of the front of the points numbered up to each sampled number (vectors to
    minimise, in point order), against one reference point for the whole task."""
    if not points:
        return {"numbers": [], "values": [], "reference": []}
    points = sorted(points)
    ref = reference_point([v for _, v in points])
    step = max(1, -(-len(points) // HV_SAMPLES))
    ends = sorted({*range(step - 1, len(points), step), len(points) - 1})
    return {"numbers": [points[i][0] for i in ends],
            "values": [hypervolume([v for _, v in points[:i + 1]], ref) for i in ends], "reference": list(ref)}


def figures(d: D.TaskData) -> list[dict[str, Any]]:
    if not d.goals.multi:
        return []
    f = front_data(d)
    first = scatter_figure(f) if len(f["metrics"]) == 2 else parallel_front_figure(f)
    return [first, hypervolume_figure(f)]


def _label(f: dict[str, Any], i: int) -> str:
    return f"{f['metrics'][i]} ({f['modes'][i]})"


def scatter_figure(f: dict[str, Any]) -> dict[str, Any]:
    on_front = set(f["front"])
    groups = {"front": [], "others": [], "infeasible": []}  # type: dict[str, list[dict[str, Any]]]
    for p in f["points"]:
        groups["infeasible" if not p["feasible"] else "front" if p["number"] in on_front else "others"].append(p)
    style = {"others": ("feasible", OTHERS, "circle", 6), "infeasible": ("infeasible", INFEASIBLE, "x", 7),
             "front": ("Pareto front", FRONT, "diamond", 9)}
    traces: list[dict[str, Any]] = []
    for key in ("others", "infeasible", "front"):
        pts = groups[key]
        name, colour, symbol, size = style[key]
        traces.append({"type": "scatter", "mode": "markers", "name": f"{name} ({len(pts)})",
                       "x": [p["values"][0] for p in pts], "y": [p["values"][1] for p in pts],
                       "customdata": [p["number"] for p in pts],
                       "marker": {"color": colour, "symbol": symbol, "size": size, "opacity": 0.8},
                       "hovertemplate": "point %{customdata}<br>%{x}, %{y}<extra></extra>"})
    stairs = sorted(groups["front"], key=lambda p: tuple(signed(p["values"], f["modes"])))
    traces.append({"type": "scatter", "mode": "lines", "name": "front", "showlegend": False,
                   "x": [p["values"][0] for p in stairs], "y": [p["values"][1] for p in stairs],
                   # in the front's order (first objective from best to worst), each step goes along the
                   # first objective, then the second: the edge of what the front dominates
                   "line": {"shape": "hv", "color": FRONT, "width": 1}})
    return {"data": traces,
            "layout": {"title": {"text": f"Pareto front: {len(groups['front'])} of {len(f['points'])} finished points",
                                 "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
                       "height": 420, "template": "plotly_white", "legend": {"orientation": "h", "y": -0.2},
                       "xaxis": {"title": {"text": _label(f, 0)}}, "yaxis": {"title": {"text": _label(f, 1)}},
                       "meta": {"kind": "pareto-scatter", "front": len(groups["front"])}}}


def parallel_front_figure(f: dict[str, Any]) -> dict[str, Any]:
    on_front = set(f["front"])
    pts = [p for p in f["points"] if p["number"] in on_front]
    dims = [{"label": _label(f, i), "values": [p["values"][i] for p in pts]} for i in range(len(f["metrics"]))]
    dims.insert(0, {"label": "point", "values": [p["number"] for p in pts]})
    return {"data": [{"type": "parcoords", "dimensions": dims,
                      "line": {"color": [p["values"][0] for p in pts], "colorscale": "Viridis", "showscale": True,
                               "colorbar": {"title": {"text": f["metrics"][0]}}}}],
            "layout": {"title": {"text": f"Pareto front: {len(pts)} points, one axis per objective",
                                 "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
                       "height": 420, "template": "plotly_white", "margin": {"l": 60, "r": 60, "t": 80, "b": 30},
                       "meta": {"kind": "pareto-parallel", "front": len(pts)}}}


def hypervolume_figure(f: dict[str, Any]) -> dict[str, Any]:
    hv = f["hypervolume"]
    return {"data": [{"type": "scatter", "mode": "lines", "name": "hypervolume", "x": hv["numbers"],
                      "y": hv["values"], "line": {"shape": "hv", "color": FRONT, "width": 2}}],
            "layout": {"title": {"text": "Front over time: hypervolume of the feasible front after each point",
                                 "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
                       "height": 360, "template": "plotly_white",
                       "xaxis": {"title": {"text": "point number"}},
                       "yaxis": {"title": {"text": "hypervolume (objectives as minimised)"}},
                       "meta": {"kind": "pareto-hypervolume", "reference": hv["reference"]}}}
