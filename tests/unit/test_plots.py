"""The report's figures carry the right data, on a task whose every outcome is known.

The task is written straight through the repository API (as the steering would record
it): eight points covering finished, interrupted-then-resumed, failed, early-stopped and
paused, on two pilots at two sites, with metric reports. One more test runs a real tiny
task with pilots and checks the report against the objective.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
from click.testing import CliRunner
from plotly.offline import get_plotlyjs

from gridhpo.bookkeeping.repository import Changes, Repository
from gridhpo.cli.main import main
from gridhpo.errors import UnknownNameError
from gridhpo.plots import data as D
from gridhpo.plots import figures
from gridhpo.plots.importance import ESTIMATORS, importance
from gridhpo.plots.png import FIGURES, write_pngs
from gridhpo.plots.report import read_payload, write_report

SPEC: dict[str, Any] = {
    "name": "known",
    "search_space": {"x": {"type": "float", "low": 0.0, "high": 10.0},
                     "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                     "act": {"type": "categorical", "choices": ["relu", "tanh"]}},
    "objective": {"metric": "loss", "mode": "min"},
    "optimiser": {"backend": "random", "seed": 1},
    "budget": {"max_points": 8, "parallel": 2, "max_attempts": 3},
}

# number: (x, lr, act, point state, final value, [(attempt state, pilot, site, start, end, metric values)])
KNOWN: dict[int, tuple[float, float, str, str, float | None, list[tuple[str, str, str, float, float, list[float]]]]] = {
    1: (5.0, 1e-2, "relu", "finished", 5.0, [("finished", "p1", "cern", 0, 10, [9, 7, 5])]),
    2: (3.0, 1e-3, "tanh", "finished", 3.0, [("interrupted", "p1", "cern", 10, 20, [8, 6]),
                                             ("finished", "p2", "desy", 25, 40, [4, 3])]),
    3: (9.0, 1e-4, "relu", "failed", None, [("failed", "p2", "desy", 0, 5, [10])]),
    4: (8.0, 1e-1, "tanh", "stopped", None, [("stopped", "p2", "desy", 5, 15, [12, 11])]),
    5: (1.0, 1e-2, "tanh", "finished", 1.0, [("finished", "p1", "cern", 20, 60, [3, 2, 1])]),
    6: (4.0, 1e-3, "relu", "finished", 4.0, [("finished", "p2", "desy", 40, 50, [])]),
    7: (7.0, 1e-2, "relu", "paused", None, [("paused", "p1", "cern", 60, 70, [6])]),
    8: (2.0, 1e-4, "tanh", "finished", 2.0, [("finished", "p2", "desy", 15, 25, [5, 2])]),
}

# number: [(attempt, sequence, kind, at)]: point 2 saves twice, is interrupted, resumes from
# its second checkpoint and saves a third
CHECKPOINTS = {2: [(1, 1, "saved", 14), (1, 2, "saved", 18), (2, 2, "restored", 25), (2, 3, "saved", 35)]}


def make_task(repo: Repository, name: str = "known", shift: float = 0.0) -> int:
    tid = repo.create_task(name, dict(SPEC, name=name))
    t0 = repo.task(tid).created_at
    ids = repo.add_points(tid, [(n, {"x": x, "lr": lr, "act": act}) for n, (x, lr, act, *_) in KNOWN.items()])
    ch = Changes()
    for pid, (_n, (_x, _lr, _act, state, value, attempts)) in zip(ids, KNOWN.items(), strict=True):
        for k, (astate, pilot, site, start, end, metrics) in enumerate(attempts, start=1):
            ch.pilots[pilot] = {"id": f"{name}-{pilot}", "task_id": tid, "site": site, "host": None,
                                "first_seen": t0, "last_seen": t0 + 70}
            ch.new_attempts[(pid, k)] = {
                "point_id": pid, "number": k, "pilot_id": f"{name}-{pilot}", "site": site, "started_at": t0 + start,
                "state": astate, "last_seen": t0 + end, "ended_at": t0 + end, "end_reason": astate,
                "value": value if astate == "finished" else None, "message": None, "stderr_tail": None}
            for seq, v in enumerate(metrics):
                ch.metrics.append({"attempt_id": None, "_key": (pid, k), "point_id": pid, "seq": seq,
                                   "step": float(seq + (2 if k > 1 else 0)), "values": {"loss": v + shift, "acc": 1.0},
                                   "at": t0 + start + seq})
        for k, seq, kind, at in CHECKPOINTS.get(_n, []):
            ch.add_checkpoint(pid, None, k, {"sequence": seq, "key": f"{name}/{_n}/{seq}", "size": 1000 * seq,
                                             "sha256": "0" * 64, "restored": kind == "restored",
                                             "attempt": 1 if kind == "restored" else k}, t0 + at)
        ch.point_updates[pid] = {"b_id": pid, "state": state, "value": None if value is None else value + shift,
                                 "attempt": len(attempts), "message": None, "dispatched_at": t0,
                                 "ended_at": t0 + attempts[-1][4]}
    repo.apply(ch)
    return tid


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(f"sqlite:///{tmp_path / 'plots.db'}")


@pytest.fixture
def known(repo: Repository) -> D.TaskData:
    return D.load(repo, make_task(repo))


def test_history_by_number_and_by_time(known: D.TaskData) -> None:
    h = D.history(known)
    assert h["numbers"] == [1, 2, 5, 6, 8]
    assert h["values"] == [5.0, 3.0, 1.0, 4.0, 2.0]
    assert h["best"] == [5.0, 3.0, 1.0, 1.0, 1.0]
    # points end at 10 (1), 25 (8), 40 (2), 50 (6), 60 (5)
    assert h["time_numbers"] == [1, 8, 2, 6, 5]
    assert h["times"] == pytest.approx([10, 25, 40, 50, 60])
    assert h["best_by_time"] == [5.0, 2.0, 2.0, 2.0, 1.0]
    assert h["failed_numbers"] == [3]


def test_maximised_objective_keeps_the_largest(repo: Repository) -> None:
    tid = make_task(repo)
    row = repo.task(tid)
    spec = dict(row.spec, objective={"metric": "loss", "mode": "max"})
    d = D.load(repo, row)
    d.task = type(row)(row.id, row.name, spec, row.state, row.message, row.created_at, row.ended_at)
    assert D.history(d)["best"] == [5.0, 5.0, 5.0, 5.0, 5.0]
    assert [r["number"] for r in D.top_points(d, 2)["rows"]] == [1, 6]


def test_parallel_coordinates_axes_and_top_k(known: D.TaskData) -> None:
    p = D.parallel(known, top_k=2)
    dims = {d["name"]: d for d in p["dimensions"]}
    assert dims["x"]["values"] == [5.0, 3.0, 1.0, 4.0, 2.0]
    assert dims["lr"]["values"] == pytest.approx([-2, -3, -2, -3, -4])  # log10 axis
    assert dims["act"]["choices"] == ["relu", "tanh"] and dims["act"]["values"] == [0, 1, 1, 0, 1]
    assert p["values"] == [5.0, 3.0, 1.0, 4.0, 2.0]
    assert [n for n, top in zip(p["numbers"], p["top"], strict=True) if top] == [5, 8]
    assert p["top_threshold"] == 2.0
    fig = figures.parallel_figure(p)
    go.Figure(fig)  # plotly validates every property
    objective = fig["data"][0]["dimensions"][-1]
    assert objective["label"] == "loss"
    lo, hi = objective["constraintrange"]
    assert lo <= 1.0 and 2.0 <= hi < 3.0  # brushes exactly the two best
    assert fig["layout"]["meta"]["objective_index"] == 3


def test_parallel_coordinates_of_a_large_task_keep_the_best_and_a_sample(known: D.TaskData) -> None:
    p = D.parallel(known, top_k=1, max_lines=4)
    assert p["total"] == 5 and len(p["values"]) == len(p["numbers"]) == 4
    assert {5, 8} <= set(p["numbers"])  # the best half always
    assert all(len(dim["values"]) == 4 for dim in p["dimensions"])
    assert [n for n, top in zip(p["numbers"], p["top"], strict=True) if top] == [5]
    assert D.parallel(known, top_k=1, max_lines=4) == p  # the same sample every time
    assert "4 of 5 points drawn" in figures.parallel_figure(p)["layout"]["title"]["text"]


def test_learning_curves_are_coloured_by_outcome(known: D.TaskData) -> None:
    c = D.learning_curves(known)
    by = {(cv["point"], cv["attempt"]): cv for cv in c["curves"]}
    assert by[(1, 1)]["outcome"] == "finished" and by[(1, 1)]["values"] == [9, 7, 5]
    assert by[(2, 1)]["outcome"] == "interrupted"
    assert by[(2, 2)]["outcome"] == "resumed" and by[(2, 2)]["steps"] == [2.0, 3.0]
    assert by[(3, 1)]["outcome"] == "failed"
    assert by[(4, 1)]["outcome"] == "stopped"
    assert by[(7, 1)]["outcome"] == "paused"
    assert (6, 1) not in by  # reported nothing
    assert c["counts"] == {"finished": 3, "resumed": 1, "stopped": 1, "paused": 1, "interrupted": 1,
                           "failed": 1, "running": 0}
    assert c["metrics"] == ["acc", "loss"]
    fig = figures.curves_figure(c, [D.learning_curves(known, "acc")])
    go.Figure(fig)
    names = {t["meta"]["outcome"]: t for t in fig["data"] if t["meta"]["metric"] == "loss"}
    assert all(t["visible"] == (t["meta"]["metric"] == "loss") for t in fig["data"])
    # the other reported metric is one menu choice away
    (menu,) = fig["layout"]["updatemenus"]
    assert [b["label"] for b in menu["buttons"]] == ["loss", "acc"]
    acc_visible = menu["buttons"][1]["args"][0]["visible"]
    assert [t["meta"]["metric"] for t, v in zip(fig["data"], acc_visible, strict=True) if v] == ["acc"] * 6
    assert set(names) == {"finished", "resumed", "stopped", "paused", "interrupted", "failed"}
    assert names["finished"]["line"]["color"] != names["failed"]["line"]["color"]
    # the three finished curves joined by gaps: 3 + 3 + 2 values and 3 gaps
    assert names["finished"]["y"] == [9, 7, 5, None, 3, 2, 1, None, 5, 2, None]


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
def test_importance_finds_the_parameter_the_objective_depends_on(known: D.TaskData, method: str) -> None:
    imp = importance(known, method)
    assert imp["method"] == method and imp["n"] == 5
    assert imp["params"][0] == "x"
    assert sorted(imp["params"]) == ["act", "lr", "x"]
    assert sum(imp["scores"]) == pytest.approx(1.0)
    assert all(s >= 0 for s in imp["scores"])
    assert imp["scores"] == sorted(imp["scores"], reverse=True)
    assert importance(known, method) == imp  # deterministic
    go.Figure(figures.importance_figure(imp))


def test_unknown_importance_method_names_the_known_ones(known: D.TaskData) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'forest'"):
        importance(known, "forrest")


def test_slices_one_per_parameter(known: D.TaskData) -> None:
    s = {sl["name"]: sl for sl in D.slices(known)}
    assert list(s) == ["x", "lr", "act"]
    assert s["x"]["x"] == s["x"]["y"] == [5.0, 3.0, 1.0, 4.0, 2.0]
    assert s["act"]["x"] == ["relu", "tanh", "tanh", "relu", "tanh"]
    fig = figures.slice_figure(s["lr"], "loss")
    go.Figure(fig)
    assert fig["layout"]["xaxis"]["type"] == "log"


def test_timeline_per_pilot_and_site_shows_interruptions_and_resumes(known: D.TaskData) -> None:
    t = D.timeline(known)
    assert t["rows"] == ["cern / known-p1", "desy / known-p2"]
    assert len(t["bars"]) == 9
    assert t["interruptions"] == 2 and t["resumes"] == 1
    resumed = [b for b in t["bars"] if b["resumed"]]
    assert [(b["point"], b["row"], b["start"], b["end"]) for b in resumed] == [(2, "desy / known-p2", 25, 40)]
    cps = [(c["row"], c["at"], c["kind"], c["sequence"]) for c in t["checkpoints"]]
    assert cps == [("cern / known-p1", 14, "saved", 1), ("cern / known-p1", 18, "saved", 2),
                   ("desy / known-p2", 25, "restored", 2), ("desy / known-p2", 35, "saved", 3)]
    fig = figures.timeline_figure(t)
    go.Figure(fig)
    kinds = {tr["name"]: tr for tr in fig["data"]}
    assert {"finished", "interrupted", "paused", "failed", "stopped", "resumed attempt",
            "interrupted / paused", "checkpoint saved", "checkpoint restored"} <= set(kinds)
    assert kinds["checkpoint saved"]["x"] == [14, 18, 35]


def test_top_points_table(known: D.TaskData) -> None:
    tab = D.top_points(known, 3)
    assert tab["columns"][:6] == ["rank", "number", "loss", "x", "lr", "act"]
    rows = tab["rows"]
    assert [(r["rank"], r["number"], r["value"]) for r in rows] == [(1, 5, 1.0), (2, 8, 2.0), (3, 2, 3.0)]
    assert rows[2]["attempts"] == 2 and rows[2]["history"] == "interrupted → finished"
    assert rows[2]["sites"] == ["cern", "desy"]
    assert rows[2]["checkpoints"] == 3 and rows[2]["restores"] == 1
    assert rows[0]["checkpoints"] == 0 and rows[0]["restores"] == 0
    assert rows[0]["params"] == {"x": 1.0, "lr": 1e-2, "act": "tanh"}


def test_report_is_self_contained_and_holds_every_figure(repo: Repository, tmp_path: Path) -> None:
    a = make_task(repo, "first")
    b = make_task(repo, "second", shift=10.0)
    out = tmp_path / "report.html"
    write_report(repo, [a, "second"], out, top_k=2)
    text = out.read_text()
    # offline: plotly.js itself inside, and the page around it loads nothing from elsewhere
    bundle = get_plotlyjs()
    assert text.count(bundle) == 1
    page = text.replace(bundle, "")
    assert "src=" not in page and "href=" not in page and "http://" not in page and "https://" not in page
    data = read_payload(text)
    assert [t["summary"]["name"] for t in data["tasks"]] == ["first", "second"]
    assert [t["summary"]["id"] for t in data["tasks"]] == [a, b]
    for t, shift in zip(data["tasks"], (0.0, 10.0), strict=True):
        f = t["figures"]
        for fig in [*f.values(), *t["slices"]]:
            go.Figure(fig)
        assert f["history_number"]["data"][0]["y"] == [v + shift for v in (5.0, 3.0, 1.0, 4.0, 2.0)]
        assert f["history_number"]["data"][1]["y"] == [v + shift for v in (5.0, 3.0, 1.0, 1.0, 1.0)]
        assert f["history_time"]["data"][0]["customdata"] == [1, 8, 2, 6, 5]
        assert f["parallel"]["data"][0]["dimensions"][-1]["values"][2] == 1.0 + shift
        assert f["importance"]["layout"]["meta"]["method"] == "forest"
        assert f["curves"]["layout"]["meta"]["metrics"] == ["loss", "acc"]
        assert f["timeline"]["layout"]["meta"]["rows"] == [f"cern / {t['summary']['name']}-p1",
                                                          f"desy / {t['summary']['name']}-p2"]
        assert len(t["slices"]) == 3
        assert t["table"]["rows"][0]["number"] == 5
        assert t["summary"]["counts"] == {"finished": 5, "failed": 1, "stopped": 1, "paused": 1}
    compare = data["compare"]
    assert [tr["name"] for tr in compare["data"]] == ["first", "second"]
    assert compare["data"][1]["y"] == [15.0, 13.0, 11.0, 11.0, 11.0]


def test_png_export_writes_every_main_figure(repo: Repository, tmp_path: Path) -> None:
    tid = make_task(repo, "pngs")
    files = write_pngs(repo, [tid], tmp_path / "png")
    assert [f.name for f in files] == [f"pngs-{n}.png" for n in FIGURES]
    for f in files:
        head = f.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", head[16:24])
        assert width > 300 and height > 150


def test_cli_plot_writes_the_report_and_pngs(home: Path, tmp_path: Path) -> None:
    repo = Repository()
    make_task(repo, "cli-task")
    runner = CliRunner()
    res = runner.invoke(main, ["plot", "cli-task", "-o", str(tmp_path / "r.html"), "--png", str(tmp_path / "p"),
                               "--importance", "anova", "--top", "3"])
    assert res.exit_code == 0, res.output
    data = read_payload((tmp_path / "r.html").read_text())
    assert data["tasks"][0]["figures"]["importance"]["layout"]["meta"]["method"] == "anova"
    assert data["tasks"][0]["figures"]["parallel"]["layout"]["meta"]["top_k"] == 3
    assert len(list((tmp_path / "p").glob("cli-task-*.png"))) == len(FIGURES)
    res = runner.invoke(main, ["plot", "no-such-task", "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1].startswith("gridhpo: error: no task 'no-such-task'")
    assert not (tmp_path / "x.html").exists()


def test_report_of_a_real_run_matches_the_objective(home: Path, tmp_path: Path) -> None:
    from gridhpo.steering.runner import run_task, submit
    from gridhpo.steering.taskfile import parse_task

    (tmp_path / "plotobj.py").write_text("def objective(x, k):\n    return (x - 3.0) ** 2 + k\n")
    spec = parse_task({
        "name": "real", "search_space": {"x": {"type": "float", "low": 0, "high": 6},
                                         "k": {"type": "int", "low": 0, "high": 2}},
        "optimiser": {"backend": "random", "seed": 3}, "budget": {"max_points": 10, "parallel": 2},
        "evaluation": {"python": "plotobj:objective"},
    }, base_dir=tmp_path)
    repo = Repository()
    tid, _ = submit(repo, spec)
    assert run_task(repo, f"filesystem://{home / 'queue'}", tid, pilots=1).state == "finished"
    data = write_report(repo, [tid], tmp_path / "real.html")
    t = data["tasks"][0]
    hist = t["figures"]["history_number"]["data"]
    assert hist[0]["x"] == sorted(p.number for p in repo.points(tid)) and len(hist[0]["x"]) == 10
    params = {p.number: p.params for p in repo.points(tid)}
    for n, v in zip(hist[0]["x"], hist[0]["y"], strict=True):
        assert math.isclose(v, (params[n]["x"] - 3.0) ** 2 + params[n]["k"], rel_tol=1e-5)
    assert hist[1]["y"][-1] == min(hist[0]["y"])
    assert t["table"]["rows"][0]["value"] == pytest.approx(min(hist[0]["y"]))
    rows = t["figures"]["timeline"]["layout"]["meta"]["rows"]
    assert len(rows) == 1 and rows[0].startswith("local / ")


def test_a_task_without_results_still_gives_a_report(repo: Repository, tmp_path: Path) -> None:
    tid = repo.create_task("empty", dict(SPEC, name="empty"))
    repo.add_points(tid, [(0, {"x": 1.0, "lr": 1e-3, "act": "relu"})])  # queued, never ran
    data = write_report(repo, [tid], tmp_path / "empty.html")
    t = data["tasks"][0]
    for fig in [*t["figures"].values(), *t["slices"]]:
        go.Figure(fig)
    assert t["figures"]["history_number"]["data"][0]["y"] == []
    assert t["figures"]["importance"]["layout"]["title"]["text"].endswith("too few finished points")
    assert t["table"]["rows"] == [] and t["summary"]["counts"] == {"queued": 1} and t["summary"]["best"] is None
    assert len(write_pngs(repo, [tid], tmp_path / "png")) == len(FIGURES)


def test_inactive_conditional_parameters_are_gaps(repo: Repository) -> None:
    spec = dict(SPEC, name="cond", search_space={
        "opt": {"type": "categorical", "choices": ["sgd", "adam"]},
        "momentum": {"type": "float", "low": 0.0, "high": 1.0, "when": {"opt": "sgd"}}})
    tid = repo.create_task("cond", spec)
    ids = repo.add_points(tid, [(0, {"opt": "sgd", "momentum": 0.5}), (1, {"opt": "adam"})])
    ch = Changes()
    for pid, v in zip(ids, (1.0, 2.0), strict=True):
        ch.point_updates[pid] = {"b_id": pid, "state": "finished", "value": v, "attempt": 1, "message": None,
                                 "dispatched_at": 0.0, "ended_at": None}
    repo.apply(ch)
    d = D.load(repo, tid)
    dims = {dim["name"]: dim["values"] for dim in D.parallel(d)["dimensions"]}
    assert dims == {"opt": [0, 1], "momentum": [0.5, None]}
    assert D.slices(d)[1]["x"] == [0.5]
    go.Figure(figures.parallel_figure(D.parallel(d)))
    assert importance(d, "anova")["note"] == "too few finished points"
