"""The live dashboard in a real headless Chromium: it lists the tasks, draws the figures,
updates them as points finish, and asks for a token when not bound to loopback."""
from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridhpo.bookkeeping.repository import Changes, Repository
from gridhpo.plots.dashboard import Dashboard, is_loopback
from tests.browser import Browser
from tests.unit.test_plots import make_task

pytestmark = pytest.mark.integration


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "chromium-profile")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(f"sqlite:///{tmp_path / 'dash.db'}")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def finish_new_point(repo: Repository, task_id: int, number: int, value: float) -> None:
    """A point that finishes, recorded as the steering records it."""
    (pid,) = repo.add_points(task_id, [(number, {"x": value, "lr": 1e-3, "act": "relu"})])
    t0 = repo.task(task_id).created_at
    ch = Changes()
    ch.new_attempts[(pid, 1)] = {"point_id": pid, "number": 1, "pilot_id": "known-p1", "site": "cern",
                                 "started_at": t0 + 70, "state": "finished", "last_seen": t0 + 80,
                                 "ended_at": t0 + 80, "end_reason": "finished", "value": value, "message": None,
                                 "stderr_tail": None}
    ch.point_updates[pid] = {"b_id": pid, "state": "finished", "value": value, "attempt": 1, "message": None,
                             "dispatched_at": t0 + 70, "ended_at": t0 + 80}
    repo.apply(ch)


def keep(path: Path) -> None:
    """Screenshots also go to GRIDHPO_SCREENSHOTS when set, for a person to look at."""
    target = os.environ.get("GRIDHPO_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


FIGURES_DRAWN = """(() => {
  const figs = Array.from(document.querySelectorAll('.js-plotly-plot'));
  return document.body.dataset.ready === '1' && figs.length >= 9 &&
         figs.every(f => f.querySelector('.main-svg')) ? figs.map(f => f.dataset.kind) : null;
})()"""


def test_dashboard_draws_a_task_and_updates_as_points_finish(repo: Repository, browser: Browser,
                                                             tmp_path: Path) -> None:
    make_task(repo, "other")
    tid = make_task(repo, "known")
    dash = Dashboard(repo, host="127.0.0.1", port=0, refresh=0.5)
    assert dash.token is None and dash.url == f"http://127.0.0.1:{dash.port}/"
    dash.start()
    try:
        browser.goto(dash.url + f"?task={tid}")
        kinds = browser.wait_for(FIGURES_DRAWN)
        assert {"history-number", "history-time", "parallel", "curves", "importance", "timeline",
                "slice"} <= set(kinds)
        assert kinds.count("slice") == 3
        assert browser.js("Array.from(document.querySelectorAll('#tasks a')).map(a => a.textContent)") == [
            "other (active, 8)", "known (active, 8)"]
        assert browser.js("document.querySelector('#tasks a.current').textContent").startswith("known")
        # the figures hold the task's data, as drawn by plotly in the page
        y = browser.js(f"document.getElementById('fig-history-number-{tid}').data[0].y")
        assert y == [5, 3, 1, 4, 2]
        rows = browser.js(f"Array.from(document.querySelectorAll('#table-{tid} tbody tr'))"
                          ".map(r => +r.cells[1].textContent)")
        assert rows == [5, 8, 2, 6, 1]
        # sorting the table by a column header
        browser.js(f"document.querySelectorAll('#table-{tid} th')[3].click()")  # x
        assert browser.js(f"Array.from(document.querySelectorAll('#table-{tid} tbody tr'))"
                          ".map(r => +r.cells[3].textContent)") == [1, 2, 3, 4, 5]
        # the top-K control brushes the objective axis of the parallel coordinates
        browser.js("document.getElementById('topk').value = 2; document.getElementById('topk-apply').click()")
        lo, hi = browser.wait_for(f"document.getElementById('fig-parallel-{tid}').data[0].dimensions[3]"
                                  ".constraintrange")
        assert lo <= 1 and 2 <= hi < 3
        shot = browser.screenshot(tmp_path / "dashboard.png")
        keep(shot)
        assert shot.stat().st_size > 50_000

        # a point finishes: the open page updates itself, without reloading
        browser.js("window.stillTheSamePage = true")
        finish_new_point(repo, tid, 9, 0.5)
        browser.wait_for("document.body.dataset.finished === '6'", timeout=30)
        y = browser.js(f"document.getElementById('fig-history-number-{tid}').data[0].y")
        assert y == [5, 3, 1, 4, 2, 0.5]
        assert browser.js(f"document.getElementById('fig-history-number-{tid}').data[1].y")[-1] == 0.5
        assert browser.js("window.stillTheSamePage") is True
        assert browser.js(f"+document.querySelector('#table-{tid} tbody tr').cells[1].textContent") == 9
    finally:
        dash.stop()


def test_dashboard_beyond_loopback_requires_the_token(repo: Repository, browser: Browser, tmp_path: Path) -> None:
    tid = make_task(repo, "known")
    dash = Dashboard(repo, host="0.0.0.0", port=0, refresh=1)
    assert not is_loopback("0.0.0.0") and dash.token and len(dash.token) >= 24
    dash.start()
    base = f"http://127.0.0.1:{dash.port}/"
    try:
        for path in ("", "api/tasks", f"api/task/{tid}"):
            assert get(base + path)[0] == 401
            assert get(base + path + "?token=wrong")[0] == 401
        status, body = get(base + f"api/tasks?token={dash.token}")
        assert status == 200 and [t["name"] for t in json.loads(body)] == ["known"]
        assert get(base + "api/tasks", {"Authorization": f"Bearer {dash.token}"})[0] == 200
        assert get(base + "static/plotly.js")[0] == 200  # the library itself holds no data

        browser.goto(base)
        text = browser.wait_for("document.body && document.body.innerText")
        assert "token is required" in text
        browser.goto(base + f"?token={dash.token}&task={tid}")
        assert browser.wait_for(FIGURES_DRAWN)
        keep(browser.screenshot(tmp_path / "dashboard-token.png", full_page=False))
    finally:
        dash.stop()


def test_loopback_serves_loopback_hosts_only_and_answers_unchanged(repo: Repository) -> None:
    tid = make_task(repo, "known")
    dash = Dashboard(repo, port=0)
    dash.start()
    base = f"http://127.0.0.1:{dash.port}/"
    try:
        # a page elsewhere reaching us through DNS rebinding arrives with its own Host
        assert get(base + "api/tasks", {"Host": "attacker.example"})[0] == 401
        assert get(base + "api/tasks", {"Host": f"localhost:{dash.port}"})[0] == 200
        status, body = get(base + f"api/task/{tid}")
        first: dict[str, Any] = json.loads(body)
        assert status == 200 and first["task"]["summary"]["points"] == 8
        again = json.loads(get(base + f"api/task/known?since={first['version']}")[1])
        assert again == {"version": first["version"], "unchanged": True}
        finish_new_point(repo, tid, 9, 0.5)
        after = json.loads(get(base + f"api/task/{tid}?since={first['version']}")[1])
        assert after["version"] != first["version"] and after["task"]["summary"]["counts"]["finished"] == 6
        status, body = get(base + "api/task/nope")
        assert status == 404 and "no task 'nope'" in json.loads(body)["error"]
    finally:
        dash.stop()


def test_dashboard_command_prints_a_url_with_a_token_when_exposed(home: Path) -> None:
    import re
    import subprocess
    import sys

    repo = Repository()
    make_task(repo, "known")
    proc = subprocess.Popen([sys.executable, "-m", "gridhpo.cli", "dashboard", "--host", "0.0.0.0", "--port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.match(r"dashboard: http://[^:/]+:(\d+)/\?token=([\w-]+)$", line.strip())
        assert m, line
        port, token = m.groups()
        assert get(f"http://127.0.0.1:{port}/api/tasks")[0] == 401
        status, body = get(f"http://127.0.0.1:{port}/api/tasks?token={token}")
        assert status == 200 and json.loads(body)[0]["name"] == "known"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
