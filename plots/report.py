"""``gridhpo plot -o report.html``: one self-contained HTML file for one or more tasks.

plotly.js is embedded in the file (no CDN), so the report opens offline and can be mailed
or archived. The figures' data sit in one ``<script type="application/json">`` element,
which the page's script draws and which tests read back.
"""
from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gridhpo.bookkeeping.repository import Repository, TaskRow
from gridhpo.errors import ConfigError
from gridhpo.plots import data as D
from gridhpo.plots import figures
from gridhpo.plots.importance import DEFAULT as DEFAULT_IMPORTANCE
from gridhpo.plots.page import CSS, JS, script_json

log = logging.getLogger(__name__)

DATA_ID = "gridhpo-data"


def plotly_js(what: str = "the HTML report") -> str:
    """The plotly.js bundle shipped with the plotly Python package."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as exc:
        raise ConfigError(f"{what} needs plotly: pip install 'gridhpo[plot]'") from exc
    return str(get_plotlyjs())


def payload(tasks: Sequence[D.TaskData], top_k: int = 10, table_k: int = 50,
            importance: str = DEFAULT_IMPORTANCE) -> dict[str, Any]:
    """The figures of every task (and a comparison when there are several)."""
    built = [figures.build(d, top_k, table_k, importance) for d in tasks]
    compare = None
    if len(built) > 1:
        metrics = {d.metric for d in tasks}
        compare = figures.compare_figure([(d.name, b["history"]) for d, b in zip(tasks, built, strict=True)],
                                         " / ".join(sorted(metrics)))
    for b in built:
        b.pop("history")  # already drawn by the history figures; would double the page
    return {"generated_at": time.time(), "tasks": built, "compare": compare}


def render_html(data: dict[str, Any], title: str) -> str:
    names = ", ".join(t["summary"]["name"] for t in data["tasks"])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        f"<script>{plotly_js()}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><small>{html.escape(names)} — generated "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(data['generated_at']))}</small></header>"
        "<main id=\"report\"></main>"
        f"<script type=\"application/json\" id=\"{DATA_ID}\">{script_json(data)}</script>"
        f"<script>{JS}</script>"
        "<script>(function(){const d=JSON.parse(document.getElementById('" + DATA_ID + "').textContent);"
        "gridhpo.render(document.getElementById('report'), d.tasks, d.compare)"
        ".then(()=>{document.body.dataset.ready='1';},"
        "e=>{document.body.dataset.error=String(e);console.error(e);});})();</script>"
        "</body></html>\n"
    )


def read_payload(text: str) -> dict[str, Any]:
    """The data of a report written by ``write_report`` (for tests and tools)."""
    m = re.search(rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', text, re.S)
    if m is None:
        raise ConfigError(f"not a gridhpo report: no <script id={DATA_ID!r}> element")
    result: dict[str, Any] = json.loads(m.group(1).replace("<\\/", "</"))
    return result


def write_report(repo: Repository, refs: Sequence[str | int | TaskRow], out: Path, top_k: int = 10,
                 table_k: int = 50, importance: str = DEFAULT_IMPORTANCE, title: str | None = None) -> dict[str, Any]:
    """Write the HTML report of the tasks ``refs`` to ``out``; returns its payload."""
    if not refs:
        raise ConfigError("gridhpo plot: name at least one task")
    tasks = [D.load(repo, r) for r in refs]
    data = payload(tasks, top_k, table_k, importance)
    text = render_html(data, title or "gridhpo: " + ", ".join(d.name for d in tasks))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report {out}: {exc.strerror or exc}") from exc
    log.info("report of %d task(s) written to %s (%.1f MB)", len(tasks), out, len(text) / 1e6)
    return data
