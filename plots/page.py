"""The browser side shared by the HTML report and the dashboard: CSS and one script that
draws the payload of ``figures.build`` (tasks side by side, one column per task)."""
from __future__ import annotations

import json
from typing import Any

CSS = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 10px 18px; background: #233; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header small { color: #bcd; }
main { padding: 8px 18px 40px; }
h2 { font-size: 16px; margin: 22px 0 6px; border-bottom: 1px solid #ccc; }
h3 { font-size: 14px; margin: 4px 0; color: #345; }
.row { display: flex; gap: 14px; overflow-x: auto; }
.col { flex: 1 1 0; min-width: 460px; background: #fff; border: 1px solid #e3e3e3; padding: 6px; }
.fig { width: 100%; }
.slices { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { cursor: pointer; background: #f0f3f6; position: sticky; top: 0; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
.tablewrap { max-height: 480px; overflow: auto; }
.note { color: #666; font-size: 12px; margin: 2px 0 6px; }
.controls { margin: 6px 0; font-size: 13px; }
.controls input { width: 4em; }
nav { width: 230px; float: left; padding: 8px; font-size: 13px; }
nav a { display: block; padding: 4px 6px; color: #124; text-decoration: none; border-radius: 3px; }
nav a.current { background: #233; color: #fff; }
.with-nav { margin-left: 250px; }
"""

JS = r"""
(function () {
  "use strict";
  const CONFIG = {responsive: true, displaylogo: false};
  const SECTIONS = [
    ["summary", "Summary"], ["pareto", "Pareto front"], ["history", "Optimisation history"],
    ["parallel", "Parallel coordinates"],
    ["curves", "Learning curves"], ["importance", "Parameter importance"], ["slices", "Slice plots"],
    ["timeline", "Attempts by pilot and site"], ["population", "Population (PBT)"],
    ["schedule", "Best member's schedule (PBT)"], ["table", "Top points"],
  ];

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
    if (Array.isArray(v)) return v.join(", ");
    return String(v);
  }

  function plot(parent, id, fig, pending) {
    let div = document.getElementById(id);
    if (!div) { div = el("div", {id: id, class: "fig"}); parent.appendChild(div); }
    div.dataset.kind = (fig.layout.meta || {}).kind || "";
    fig.layout.uirevision = "keep";
    pending.push(Plotly.react(div, fig.data, fig.layout, CONFIG));
  }

  function summary(col, t) {
    const s = t.summary;
    const best = s.best ? `${fmt(s.best.value)} at point ${s.best.number}` : "none yet";
    const counts = Object.entries(s.counts).map(([k, v]) => `${k} ${v}`).join(", ");
    col.appendChild(el("div", {class: "note summary dyn"},
      `task ${s.id} (${s.state}): ${s.points} points [${counts}], ${s.attempts} attempts; ` +
      `objective ${s.metric} (${s.mode}); best ${best}; optimiser ${s.optimiser}`));
  }

  function table(col, t, key) {
    const tb = t.table;
    const wrap = el("div", {class: "tablewrap dyn"});
    const tab = el("table", {class: "top-points", id: `table-${key}`});
    const head = el("tr");
    tb.columns.forEach((c, i) => {
      const th = el("th", {}, c);
      th.addEventListener("click", () => sortTable(tab, i, th));
      head.appendChild(th);
    });
    const thead = el("thead"); thead.appendChild(head); tab.appendChild(thead);
    const body = el("tbody");
    for (const r of tb.rows) {
      const cells = [r.rank, r.number, r.value, ...Object.values(r.params), r.attempts, r.history,
                     r.checkpoints, r.restores, r.duration, r.sites];
      const tr = el("tr");
      for (const c of cells) {
        const td = el("td", {}, fmt(c));
        if (typeof c === "number") td.dataset.v = c;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    tab.appendChild(body);
    wrap.appendChild(tab);
    col.appendChild(wrap);
  }

  function sortTable(tab, i, th) {
    const asc = !th.classList.contains("sorted-asc");
    tab.querySelectorAll("th").forEach(h => h.classList.remove("sorted-asc", "sorted-desc"));
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
    const body = tab.tBodies[0];
    const rows = Array.from(body.rows);
    const key = r => { const c = r.cells[i]; return c.dataset.v !== undefined ? +c.dataset.v : c.textContent; };
    rows.sort((a, b) => { const x = key(a), y = key(b);
      const d = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return asc ? d : -d; });
    rows.forEach(r => body.appendChild(r));
  }

  function section(root, name, title) {
    let s = document.getElementById(`section-${name}`);
    if (!s) {
      s = el("section", {id: `section-${name}`});
      s.appendChild(el("h2", {}, title));
      if (name === "parallel") {
        const c = el("div", {class: "controls"});
        c.innerHTML = 'highlight the top <input id="topk" type="number" min="1" value="10"> points ' +
          '<button id="topk-apply">highlight</button> <button id="topk-clear">clear brushing</button>';
        s.appendChild(c);
      }
      s.appendChild(el("div", {class: "row"}));
      root.appendChild(s);
    }
    return s.querySelector(".row");
  }

  function column(row, name, key, title) {
    const id = `col-${name}-${key}`;
    let col = document.getElementById(id);
    if (!col) { col = el("div", {class: "col", id: id}); col.appendChild(el("h3", {}, title)); row.appendChild(col); }
    // text parts are redrawn; figure divs stay so that Plotly.react keeps zoom and brushing
    col.querySelectorAll(".dyn").forEach(e => e.remove());
    return col;
  }

  // Draw tasks side by side; called again with fresh data, it updates the figures in place.
  function render(root, tasks, compare) {
    const pending = [];
    if (compare) {
      const row = section(root, "compare", "Tasks compared");
      plot(column(row, "compare", "all", "best so far"), "fig-compare", compare, pending);
    }
    // the sections of figures only some tasks have (several objectives; population-based
    // training) only where a task has them
    const sections = SECTIONS.filter(([n]) => (n !== "pareto" || tasks.some(t => (t.figures.pareto || []).length))
      && (!["population", "schedule"].includes(n) || tasks.some(t => t.figures[n])));
    // every column first, so that each figure is drawn at its final width
    for (const [name, title] of sections) {
      const row = section(root, name, title);
      for (const t of tasks) column(row, name, t.summary.id, t.summary.name);
    }
    for (const [name, title] of sections) {
      const row = section(root, name, title);
      for (const t of tasks) {
        const key = t.summary.id;
        const col = column(row, name, key, t.summary.name);
        const f = t.figures;
        if (name === "summary") summary(col, t);
        else if (name === "history") {
          plot(col, `fig-history-number-${key}`, f.history_number, pending);
          plot(col, `fig-history-time-${key}`, f.history_time, pending);
        } else if (name === "importance") {
          col.appendChild(el("div", {class: "note dyn"}, (f.importance.layout.meta || {}).description));
          plot(col, `fig-importance-${key}`, f.importance, pending);
        } else if (name === "pareto") {
          (f.pareto || []).forEach((fig, i) => plot(col, `fig-pareto-${key}-${i}`, fig, pending));
        } else if (name === "slices") {
          let grid = col.querySelector(".slices");
          if (!grid) { grid = el("div", {class: "slices"}); col.appendChild(grid); }
          t.slices.forEach((s, i) => plot(grid, `fig-slice-${key}-${i}`, s, pending));
        } else if (name === "table") table(col, t, key);
        else if (f[name]) plot(col, `fig-${name}-${key}`, f[name], pending);
      }
    }
    return Promise.all(pending);
  }

  function topK(k) {
    document.querySelectorAll('.fig[data-kind="parallel"]').forEach(gd => {
      const meta = gd.layout.meta, idx = meta.objective_index;
      const vals = gd.data[0].dimensions[idx].values.filter(v => v !== null).slice();
      if (!vals.length) return;
      vals.sort((a, b) => meta.maximise ? b - a : a - b);
      const best = vals[0], thr = vals[Math.min(k, vals.length) - 1];
      const lo = Math.min(best, thr), hi = Math.max(best, thr), pad = 1e-9 * Math.max(1, Math.abs(hi));
      Plotly.restyle(gd, {[`dimensions[${idx}].constraintrange`]: [[lo - pad, hi + pad]]}, [0]);
    });
  }
  function clearBrushing() {
    document.querySelectorAll('.fig[data-kind="parallel"]').forEach(gd => {
      const upd = {};
      gd.data[0].dimensions.forEach((d, i) => { upd[`dimensions[${i}].constraintrange`] = null; });
      Plotly.restyle(gd, upd, [0]);
    });
  }
  document.addEventListener("click", ev => {
    if (ev.target.id === "topk-apply") topK(+document.getElementById("topk").value || 10);
    if (ev.target.id === "topk-clear") clearBrushing();
  });

  window.gridhpo = {render: render, topK: topK, clearBrushing: clearBrushing};
})();
"""


def script_json(obj: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>`` breaking out)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
