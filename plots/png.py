"""``gridhpo plot TASK --png DIR``: the main figures as PNG files, drawn with matplotlib.

Files are named ``<task>-<figure>.png``: history, parallel, curves, importance, slices and
timeline. They use the same data functions as the HTML report.
"""
from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gridhpo.bookkeeping.repository import Repository, TaskRow
from gridhpo.errors import ConfigError
from gridhpo.plots import data as D
from gridhpo.plots.figures import OUTCOME_COLOURS, STATE_COLOURS
from gridhpo.plots.importance import DEFAULT as DEFAULT_IMPORTANCE
from gridhpo.plots.importance import importance as importance_data
from gridhpo.plots.names import FIGURES, png_name

log = logging.getLogger(__name__)

def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError("PNG export needs matplotlib: pip install 'gridhpo[plot]'") from exc
    matplotlib.use("Agg")  # files only: never open a window, work without a display
    import matplotlib.pyplot as plt

    return plt


def write_pngs(repo: Repository, refs: Sequence[str | int | TaskRow], out_dir: Path, top_k: int = 10,
               importance: str = DEFAULT_IMPORTANCE, dpi: int = 120) -> list[Path]:
    """Write every figure of every task in ``refs`` into ``out_dir``; returns the files."""
    if not refs:
        raise ConfigError("gridhpo plot: name at least one task")
    _pyplot()  # no matplotlib: say so before making the folder
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--png {out_dir}: cannot create the folder: {exc.strerror or exc}") from exc
    written = []
    for ref in refs:
        d = D.load(repo, ref)
        for name in FIGURES:
            path = out_dir / png_name(d.name, name)
            try:
                path.write_bytes(figure_png(d, name, top_k, importance, dpi))
            except OSError as exc:
                raise ConfigError(f"cannot write {out_dir}/{name}.png: {exc.strerror or exc}") from exc
            written.append(path)
    log.info("%d PNG files written to %s", len(written), out_dir)
    return written


def figure_png(d: D.TaskData, name: str, top_k: int = 10, importance: str = DEFAULT_IMPORTANCE,
               dpi: int = 120) -> bytes:
    """One figure of one task as PNG bytes (the service draws them for remote ``--png``)."""
    if name not in FIGURES:
        raise ConfigError(f"no figure {name!r}: one of {', '.join(FIGURES)}")
    plt = _pyplot()
    fig = plt.figure(figsize=(10, 5))
    try:
        _draw(name, fig, d, top_k, importance)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=dpi, bbox_inches="tight")
        return out.getvalue()
    finally:
        plt.close(fig)


def _draw(name: str, fig: Any, d: D.TaskData, top_k: int, importance: str) -> None:
    if name == "history":
        _history(fig, d)
    elif name == "parallel":
        _parallel(fig, d, top_k)
    elif name == "curves":
        _curves(fig, d)
    elif name == "importance":
        _importance(fig, d, importance)
    elif name == "slices":
        _slices(fig, d)
    else:
        _timeline(fig, d)


def _history(fig: Any, d: D.TaskData) -> None:
    h = D.history(d)
    for ax, x, y, best, label in (
        (fig.add_subplot(1, 2, 1), h["numbers"], h["values"], h["best"], "point number"),
        (fig.add_subplot(1, 2, 2), h["times"], h["time_values"], h["best_by_time"], "time since the task started (s)"),
    ):
        ax.scatter(x, y, s=6, alpha=0.5, label=d.metric)
        ax.step(x, best, where="post", color="#d62728", label="best so far")
        ax.set_xlabel(label)
        ax.set_ylabel(d.metric)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{d.name}: optimisation history ({len(h['values'])} finished points)")


def _parallel(fig: Any, d: D.TaskData, top_k: int) -> None:
    p = D.parallel(d, top_k)
    ax = fig.add_subplot(1, 1, 1)
    cols = [*p["dimensions"], {"name": d.metric, "values": p["values"], "log": False, "choices": None}]
    labels = [c["name"] + (" (log10)" if c.get("log") else "") for c in cols]
    scaled = []
    for c in cols:
        vals = [v for v in c["values"] if v is not None]
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        span = (hi - lo) or 1.0
        scaled.append([math.nan if v is None else (v - lo) / span for v in c["values"]])
    rows = list(zip(*scaled, strict=True)) if scaled and scaled[0] else []
    from matplotlib.collections import LineCollection

    xs = list(range(len(cols)))
    for top, colour, alpha, width in ((False, "#999999", 0.15, 0.6), (True, "#d62728", 0.9, 1.5)):
        # one collection per group: thousands of lines in one draw call, the top K on top
        segs = [list(zip(xs, r, strict=True)) for r, t in zip(rows, p["top"], strict=True) if t is top]
        ax.add_collection(LineCollection(segs, colors=colour, alpha=alpha, linewidths=width))
    ax.set_xlim(-0.2, len(cols) - 0.8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(range(len(cols)), labels)
    ax.set_yticks([])
    for j in range(len(cols)):
        ax.axvline(j, color="black", linewidth=0.8)
    ax.set_title(f"{d.name}: parameters and {d.metric}, top {p['top_k']} in red (axes scaled to their range)")


def _curves(fig: Any, d: D.TaskData) -> None:
    c = D.learning_curves(d)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    handles = []
    for o in D.OUTCOMES:
        segs = [list(zip(cv["steps"], cv["values"], strict=True)) for cv in c["curves"] if cv["outcome"] == o]
        if segs:
            ax.add_collection(LineCollection(segs, colors=OUTCOME_COLOURS[o], alpha=0.5, linewidths=0.8))
            handles.append(Line2D([], [], color=OUTCOME_COLOURS[o], label=f"{o} ({len(segs)})"))
    ax.autoscale()
    seen = bool(handles)
    ax.set_xlabel("step")
    ax.set_ylabel(c["metric"])
    if seen:
        ax.legend(handles=handles, fontsize=8)
    ax.set_title(f"{d.name}: learning curves of {c['metric']} by outcome")
    ax.grid(alpha=0.3)


def _importance(fig: Any, d: D.TaskData, method: str) -> None:
    imp = importance_data(d, method)
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(imp["params"][::-1], imp["scores"][::-1], color="#1f77b4")
    ax.set_xlabel("share of the objective's variation")
    ax.set_title(f"{d.name}: parameter importance ({imp['method']}, {imp['n']} points)"
                 + (f": {imp['note']}" if imp.get("note") else ""))


def _slices(fig: Any, d: D.TaskData) -> None:
    sl = D.slices(d)
    n = max(1, len(sl))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig.set_size_inches(3.2 * cols, 2.8 * rows + 0.6)
    for i, s in enumerate(sl):
        ax = fig.add_subplot(rows, cols, i + 1)
        if s["choices"]:
            index = {c: k for k, c in enumerate(s["choices"])}
            ax.scatter([index.get(x, -1) for x in s["x"]], s["y"], s=6, c=s["numbers"], cmap="Blues")
            ax.set_xticks(range(len(s["choices"])), s["choices"])
        else:
            ax.scatter(s["x"], s["y"], s=6, c=s["numbers"], cmap="Blues")
            if s["log"]:
                ax.set_xscale("log")
        ax.set_xlabel(s["name"])
        ax.set_ylabel(d.metric)
    fig.suptitle(f"{d.name}: {d.metric} against each parameter (darker = later point)")
    fig.tight_layout()


def _timeline(fig: Any, d: D.TaskData) -> None:
    t = D.timeline(d)
    fig.set_size_inches(10, max(2.5, 1.0 + 0.3 * len(t["rows"])))
    ax = fig.add_subplot(1, 1, 1)
    ypos = {r: i for i, r in enumerate(t["rows"])}
    for state in t["states"]:
        bars = [b for b in t["bars"] if b["state"] == state]
        ax.barh([ypos[b["row"]] for b in bars], [b["end"] - b["start"] for b in bars],
                left=[b["start"] for b in bars], height=0.6, color=STATE_COLOURS.get(state, "#333333"), label=state)
    resumed = [b for b in t["bars"] if b["resumed"]]
    if resumed:
        ax.scatter([b["start"] for b in resumed], [ypos[b["row"]] for b in resumed], marker=">", s=18,
                   color=OUTCOME_COLOURS["resumed"], label="resumed", zorder=3)
    for kind, marker, colour in (("saved", "|", "#1f77b4"), ("restored", "*", "#17becf")):
        cps = [c for c in t["checkpoints"] if c["kind"] == kind]
        if cps:
            ax.scatter([c["at"] for c in cps], [ypos[c["row"]] for c in cps], marker=marker, s=40, color=colour,
                       label=f"checkpoint {kind}", zorder=4)
    seen = bool(t["bars"])
    ax.set_yticks(range(len(t["rows"])), t["rows"])
    ax.set_xlabel("time since the task started (s)")
    if seen:
        ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"{d.name}: attempts by pilot and site ({t['interruptions']} interrupted or paused, "
                 f"{t['resumes']} resumed)")
