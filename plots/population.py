"""The figures of a population-based training task: the population over time (the objective
of each member against the task's resource, with an edge for every exploit from the parent
at the step it was copied to the member that copied it) and the best member's
hyperparameter schedule (each parameter as a step function of the resource)."""
from __future__ import annotations

from typing import Any

from gridhpo.plots import data as D
from gridhpo.plots.layout import layout as _layout
from gridhpo.steering.lineage import best_member, mode_of, schedule

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def member_curves(d: D.TaskData) -> dict[int, list[tuple[float, float]]]:
    """Each member's objective by step; a step trained again (a lost attempt's rerun, or an
    exploit's restart from its parent's step) keeps its latest value."""
    out: dict[int, dict[float, float]] = {}
    for p in d.points:
        curve = out.setdefault(p.number, {})
        for a in sorted(p.attempts, key=lambda a: a.number):
            for step, values in d.metrics.get(a.id, []):
                v = values.get(d.metric)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    curve[step] = float(v)
    return {m: sorted(c.items()) for m, c in out.items() if c}


def population_figure(d: D.TaskData) -> dict[str, Any]:
    curves = member_curves(d)
    traces: list[dict[str, Any]] = []
    for m, pts in sorted(curves.items()):
        traces.append({"type": "scatter", "mode": "lines+markers", "name": f"member {m}",
                       "x": [s for s, _ in pts], "y": [v for _, v in pts], "marker": {"size": 4},
                       "line": {"color": PALETTE[m % len(PALETTE)], "width": 1.5}})
    edges = 0
    for s in d.lineage:
        if s["parent"] is None:
            continue
        y0 = dict(curves.get(s["parent"], [])).get(s["step"])
        after = [(x, v) for x, v in curves.get(s["member"], []) if x > s["step"]]
        if y0 is None or not after:
            continue
        edges += 1
        # from the parent's weights at the step copied to the copier's first value after it
        traces.append({"type": "scatter", "mode": "lines", "showlegend": edges == 1, "name": "exploit",
                       "x": [s["step"], after[0][0]], "y": [y0, after[0][1]],
                       "line": {"color": PALETTE[s["member"] % len(PALETTE)], "dash": "dot", "width": 2},
                       "hovertext": f"member {s['member']} copied member {s['parent']} at {s['step']:g}"})
    return {"data": traces, "layout": _layout("Population over time (dotted: exploits)",
                                              xaxis={"title": {"text": d.task.spec["early_stopping"]["resource"]}},
                                              yaxis={"title": {"text": d.metric}},
                                              meta={"kind": "population", "members": len(curves), "exploits": edges})}


def schedule_figure(d: D.TaskData) -> dict[str, Any]:
    member = best_member(mode_of(d.task), d.lineage)
    sched = schedule(d.lineage, member) if member is not None else []
    names = sorted({k for s in sched for k, v in s["config_after"].items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                    and len({x["config_after"].get(k) for x in sched}) > 1})
    names = names[:3]  # one panel each, stacked, the resource shared
    traces = []
    axes: dict[str, Any] = {}
    for i, name in enumerate(names):
        xs = [s["step"] for s in sched] + ([sched[-1]["until"]] if sched else [])
        ys = [s["config_after"][name] for s in sched] + ([sched[-1]["config_after"][name]] if sched else [])
        traces.append({"type": "scatter", "mode": "lines+markers", "name": name, "x": xs, "y": ys,
                       "line": {"shape": "hv", "color": PALETTE[i % len(PALETTE)]}, "yaxis": f"y{i + 1}"})
        top = 1 - i / len(names)
        axes[f"yaxis{i + 1}" if i else "yaxis"] = {"title": {"text": name}, "type": "log",
                                                   "domain": [top - 1 / len(names) + 0.06, top]}
    return {"data": traces, "layout": _layout(f"Schedule of the best member ({member})", **axes,
                                              xaxis={"title": {"text": d.task.spec["early_stopping"]["resource"]},
                                                     "anchor": f"y{len(names)}" if len(names) > 1 else "y"},
                                              height=160 + 140 * max(len(names), 1),
                                              meta={"kind": "schedule", "member": member, "segments": len(sched)})}
