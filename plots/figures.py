"""Plotly figures as plain JSON-able dicts, built from ``plots.data``.

The same dicts go into the HTML report and the dashboard's API; the browser draws them with
plotly.js, so no plotting library runs here. Large tasks use WebGL traces and one trace per
colour (curves and bars joined by ``None`` gaps) so a 10,000-point task stays responsive.
"""
from __future__ import annotations

import math
from typing import Any

from gridhpo.plots import data as D
from gridhpo.plots import pareto, population
from gridhpo.plots.importance import DEFAULT as DEFAULT_IMPORTANCE
from gridhpo.plots.importance import importance as importance_data
from gridhpo.plots.layout import layout as _layout

OUTCOME_COLOURS = {"finished": "#2ca02c", "resumed": "#17becf", "stopped": "#ff7f0e", "paused": "#9467bd",
                   "interrupted": "#8c564b", "failed": "#d62728", "running": "#7f7f7f"}
STATE_COLOURS = {"finished": "#2ca02c", "failed": "#d62728", "interrupted": "#8c564b", "lost": "#e377c2",
                 "stopped": "#ff7f0e", "paused": "#9467bd", "running": "#7f7f7f", "cancelled": "#000000"}
TASK_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
# Browsers allow about 16 WebGL contexts per page, and a report has dozens of figures: SVG
# draws lines as one path whatever their length, so only large marker sets go to WebGL.
GL_MARKERS = 3000
# above this many curve vertices, hover labels per vertex would double the page's size
HOVER_TEXT_LIMIT = 50_000


def _r(values: list[Any]) -> list[Any]:
    """Six significant digits: what a figure can show, and a third of the JSON."""
    return [None if v is None or (isinstance(v, float) and not math.isfinite(v))
            else (float(f"{v:.6g}") if isinstance(v, float) else v) for v in values]


def _markers(n: int) -> str:
    return "scattergl" if n > GL_MARKERS else "scatter"


def history_figure(h: dict[str, Any], metric: str, by: str = "number") -> dict[str, Any]:
    """Values and best so far against point number (``by="number"``) or time since the task began."""
    if by == "number":
        x, y, best, nums = h["numbers"], h["values"], h["best"], h["numbers"]
        xtitle = "point number"
    else:
        x, y, best, nums = h["times"], h["time_values"], h["best_by_time"], h["time_numbers"]
        xtitle = "time since the task started (s)"
    traces: list[dict[str, Any]] = [
        {"type": _markers(len(x)), "mode": "markers", "name": metric, "x": _r(x), "y": _r(y), "customdata": nums,
         "marker": {"size": 5, "color": "#1f77b4", "opacity": 0.6},
         "hovertemplate": "point %{customdata}<br>" + metric + " %{y}<extra></extra>"},
        {"type": "scatter", "mode": "lines", "name": "best so far", "x": _r(x), "y": _r(best),
         "line": {"shape": "hv", "color": "#d62728", "width": 2}},
    ]
    infeasible = h["infeasible"] if "infeasible" in h else []
    if by == "number" and infeasible:
        traces.append({"type": _markers(len(infeasible)), "mode": "markers", "name": "infeasible (a constraint missed)",
                       "x": [n for n, _ in infeasible], "y": _r([v for _, v in infeasible]),
                       "marker": {"size": 7, "color": "#7f7f7f", "symbol": "x"}})
    stopped = [(n, v) for n, v in h["stopped"] if v is not None]
    if by == "number" and stopped:
        traces.append({"type": _markers(len(stopped)), "mode": "markers", "name": "stopped early (last value)",
                       "x": [n for n, _ in stopped], "y": _r([v for _, v in stopped]),
                       "marker": {"size": 5, "color": OUTCOME_COLOURS["stopped"], "symbol": "x"}})
    return {"data": traces, "layout": _layout(f"History ({'by point' if by == 'number' else 'by time'})",
                                              xaxis={"title": {"text": xtitle}}, yaxis={"title": {"text": metric}},
                                              meta={"kind": f"history-{by}", "points": len(x)})}


def compare_figure(histories: list[tuple[str, dict[str, Any]]], metric: str) -> dict[str, Any]:
    """The best-so-far curves of several tasks on one axis."""
    traces = [{"type": "scatter", "mode": "lines", "name": name, "x": h["numbers"], "y": _r(h["best"]),
               "line": {"shape": "hv", "width": 2, "color": TASK_COLOURS[i % len(TASK_COLOURS)]}}
              for i, (name, h) in enumerate(histories)]
    return {"data": traces, "layout": _layout("Best so far, task by task", xaxis={"title": {"text": "point number"}},
                                              yaxis={"title": {"text": metric}}, meta={"kind": "compare"})}


def parallel_figure(p: dict[str, Any]) -> dict[str, Any]:
    """Parallel coordinates; drag on an axis to brush a range, the top K start highlighted."""
    dims: list[dict[str, Any]] = []
    for dim in p["dimensions"]:
        d: dict[str, Any] = {"label": dim["name"] + (" (log10)" if dim["log"] else ""), "values": _r(dim["values"])}
        if dim.get("choices"):
            d["tickvals"] = list(range(len(dim["choices"])))
            d["ticktext"] = dim["choices"]
            d["range"] = [-0.5, len(dim["choices"]) - 0.5]
        dims.append(d)
    values = p["values"]
    obj: dict[str, Any] = {"label": p["objective"], "values": _r(values)}
    if values and p["top_threshold"] is not None:
        best = max(values) if p["maximise"] else min(values)
        lo, hi = sorted((best, p["top_threshold"]))
        pad = 1e-9 * max(1.0, abs(hi))
        obj["constraintrange"] = [lo - pad, hi + pad]
    dims.append(obj)
    line: dict[str, Any] = {"color": _r(values), "colorscale": "Viridis", "reversescale": not p["maximise"],
                            "showscale": True, "colorbar": {"title": {"text": p["objective"]}}}
    return {"data": [{"type": "parcoords", "dimensions": dims, "line": line}],
            "layout": _layout(f"Top {p['top_k']} by {p['objective']} highlighted; drag on an axis to brush"
                              + ("" if len(values) == p["total"] else
                                 f"<br>{len(values):,} of {p['total']:,} points drawn: the best "
                                 f"{len(values) // 2:,} and a random sample of the others"),
                              height=420, margin={"l": 60, "r": 60, "t": 80, "b": 30},
                              meta={"kind": "parallel", "objective_index": len(dims) - 1,
                                    "maximise": p["maximise"], "top_k": p["top_k"]})}


def _curve_traces(c: dict[str, Any], visible: bool, with_text: bool) -> list[dict[str, Any]]:
    traces = []
    for o in D.OUTCOMES:
        xs: list[Any] = []
        ys: list[Any] = []
        text: list[Any] = []
        n = 0
        for cv in c["curves"]:
            if cv["outcome"] != o:
                continue
            n += 1
            xs.extend([*cv["steps"], None])
            ys.extend([*cv["values"], None])
            if with_text:
                text.extend([f"point {cv['point']} attempt {cv['attempt']}"] * len(cv["steps"]) + [None])
        if n == 0:
            continue
        tr: dict[str, Any] = {"type": "scatter", "mode": "lines", "name": f"{o} ({n})", "x": _r(xs), "y": _r(ys),
                              "line": {"color": OUTCOME_COLOURS[o], "width": 1}, "opacity": 0.7,
                              "connectgaps": False, "visible": visible,
                              "meta": {"outcome": o, "curves": n, "metric": c["metric"]}}
        if with_text:
            tr["text"] = text
            tr["hovertemplate"] = "%{text}<br>step %{x}<br>%{y}<extra>" + o + "</extra>"
        traces.append(tr)
    return traces


def curves_figure(c: dict[str, Any], others: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Learning curves, one trace per outcome with the curves joined by gaps; ``others``
    (the curves of other reported metrics) are hidden behind a metric menu."""
    groups = [c, *(others or [])]
    total = sum(len(cv["steps"]) for g in groups for cv in g["curves"])
    with_text = total <= HOVER_TEXT_LIMIT
    traces: list[dict[str, Any]] = []
    for i, g in enumerate(groups):
        traces.extend(_curve_traces(g, i == 0, with_text))
    layout = _layout(f"{c['metric']} by step, coloured by outcome", xaxis={"title": {"text": "step"}},
                     yaxis={"title": {"text": c["metric"]}},
                     meta={"kind": "curves", "curves": len(c["curves"]), "metrics": [g["metric"] for g in groups]})
    if len(groups) > 1:
        layout["updatemenus"] = [{
            "type": "dropdown", "x": 1.0, "xanchor": "right", "y": 1.15, "yanchor": "top",
            "buttons": [{"label": g["metric"], "method": "update",
                         "args": [{"visible": [t["meta"]["metric"] == g["metric"] for t in traces]},
                                  {"yaxis.title.text": g["metric"],
                                   "title.text": f"{g['metric']} by step, coloured by outcome"}]}
                        for g in groups]}]
    return {"data": traces, "layout": layout}


def importance_figure(imp: dict[str, Any]) -> dict[str, Any]:
    note = f" — {imp['note']}" if imp.get("note") else ""
    return {"data": [{"type": "bar", "orientation": "h", "x": _r(imp["scores"][::-1]), "y": imp["params"][::-1],
                      "marker": {"color": "#1f77b4"}, "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"}],
            "layout": _layout(f"Importance ({imp['method']}, {imp['n']} points){note}",
                              height=max(220, 80 + 30 * len(imp["params"])), xaxis={"title": {"text": "share"}},
                              meta={"kind": "importance", "method": imp["method"],
                                    "description": imp["description"]})}


def slice_figure(s: dict[str, Any], metric: str) -> dict[str, Any]:
    xaxis: dict[str, Any] = {"title": {"text": s["name"]}}
    if s["log"]:
        xaxis["type"] = "log"
    if s["choices"]:
        xaxis.update(type="category", categoryorder="array", categoryarray=s["choices"])
    return {"data": [{"type": _markers(len(s["x"])), "mode": "markers", "x": _r(s["x"]), "y": _r(s["y"]),
                      "customdata": s["numbers"],
                      "marker": {"size": 5, "color": s["numbers"], "colorscale": "Blues", "showscale": False,
                                 "opacity": 0.7},
                      "hovertemplate": "point %{customdata}<br>" + s["name"] + " %{x}<br>" + metric
                                       + " %{y}<extra></extra>"}],
            "layout": _layout(f"Slice: {s['name']}", height=300, xaxis=xaxis, yaxis={"title": {"text": metric}},
                              meta={"kind": "slice", "param": s["name"]})}


def timeline_figure(t: dict[str, Any]) -> dict[str, Any]:
    """Attempts as bars on their pilot's row; resumes and interruptions marked."""
    traces = []
    for state in t["states"]:
        xs: list[Any] = []
        ys: list[Any] = []
        text: list[Any] = []
        for b in t["bars"]:
            if b["state"] == state:
                xs.extend([b["start"], b["end"], None])
                ys.extend([b["row"], b["row"], None])
                label = f"point {b['point']} attempt {b['attempt']}: {b['end_reason'] or b['state']}"
                text.extend([label, label, None])
        traces.append({"type": "scatter", "mode": "lines", "name": state, "x": _r(xs), "y": ys, "text": text,
                       "line": {"color": STATE_COLOURS.get(state, "#333333"), "width": 8},
                       "hovertemplate": "%{text}<extra></extra>"})
    resumes = [b for b in t["bars"] if b["resumed"]]
    if resumes:
        traces.append({"type": _markers(len(resumes)), "mode": "markers", "name": "resumed attempt",
                       "x": _r([b["start"] for b in resumes]), "y": [b["row"] for b in resumes],
                       "text": [f"point {b['point']} attempt {b['attempt']} resumed" for b in resumes],
                       "marker": {"symbol": "triangle-right", "size": 9, "color": OUTCOME_COLOURS["resumed"]},
                       "hovertemplate": "%{text}<extra></extra>"})
    cut = [b for b in t["bars"] if b["state"] in ("interrupted", "lost", "paused")]
    if cut:
        traces.append({"type": _markers(len(cut)), "mode": "markers", "name": "interrupted / paused",
                       "x": _r([b["end"] for b in cut]), "y": [b["row"] for b in cut],
                       "text": [f"point {b['point']} attempt {b['attempt']} {b['state']}" for b in cut],
                       "marker": {"symbol": "x", "size": 9, "color": "#000000"},
                       "hovertemplate": "%{text}<extra></extra>"})
    for kind, symbol, colour in (("saved", "line-ns-open", "#1f77b4"), ("restored", "star", "#17becf")):
        cps = [c for c in t["checkpoints"] if c["kind"] == kind]
        if cps:
            traces.append({"type": _markers(len(cps)), "mode": "markers", "name": f"checkpoint {kind}",
                           "x": _r([c["at"] for c in cps]), "y": [c["row"] for c in cps],
                           "text": [f"point {c['point']} checkpoint {c['sequence']} {kind} ({c['size']} bytes)"
                                    for c in cps],
                           "marker": {"symbol": symbol, "size": 10, "color": colour,
                                      "line": {"width": 2, "color": colour}},
                           "hovertemplate": "%{text}<extra></extra>"})
    return {"data": traces,
            "layout": _layout(f"{len(t['bars'])} attempts: {t['interruptions']} interrupted or paused, "
                              f"{t['resumes']} resumed", height=min(1200, 140 + 24 * max(1, len(t["rows"]))),
                              margin={"l": 200, "r": 20, "t": 40, "b": 50},
                              xaxis={"title": {"text": "time since the task started (s)"}},
                              yaxis={"type": "category", "categoryorder": "array", "categoryarray": t["rows"]},
                              meta={"kind": "timeline", "rows": t["rows"]})}


# Other reported metrics join the learning curves' menu while all curves together stay
# below this many vertices; past it only the objective is drawn (the page would double).
OTHER_METRICS_VERTICES = 200_000
OTHER_METRICS_MAX = 6


def _curves(d: D.TaskData) -> dict[str, Any]:
    main = D.learning_curves(d)
    others: list[dict[str, Any]] = []
    total = sum(len(cv["steps"]) for cv in main["curves"])
    for m in main["metrics"]:
        if m == main["metric"] or len(others) >= OTHER_METRICS_MAX:
            continue
        c = D.learning_curves(d, m)
        total += sum(len(cv["steps"]) for cv in c["curves"])
        if total > OTHER_METRICS_VERTICES:
            break
        others.append(c)
    return curves_figure(main, others)


def build(d: D.TaskData, top_k: int = 10, table_k: int = 50,
          importance: str = DEFAULT_IMPORTANCE) -> dict[str, Any]:
    """Every figure of one task, plus its summary and top-points table, as JSON-able data."""
    h = D.history(d)
    return {
        "summary": D.summary(d),
        "history": h,
        "figures": {
            "history_number": history_figure(h, d.metric, "number"),
            "history_time": history_figure(h, d.metric, "time"),
            "parallel": parallel_figure(D.parallel(d, top_k)),
            "curves": _curves(d),
            "importance": importance_figure(importance_data(d, importance)),
            "timeline": timeline_figure(D.timeline(d)),
            # multi-objective search: the front and its hypervolume over time (none otherwise)
            "pareto": pareto.figures(d),
            # population-based training only: the population over time, the best member's schedule
            **({"population": population.population_figure(d), "schedule": population.schedule_figure(d)}
               if d.lineage else {}),
        },
        "slices": [slice_figure(s, d.metric) for s in D.slices(d)],
        "table": D.top_points(d, table_k),
    }
