"""hpogrid projects submitted with `gridhpo submit --hpogrid` and run to the end by real pilots
on the embedded defaults: the trial runner under a pilot, a function model with several
reports per trial, and asha from hpogrid's asynchyperband."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gridhpo.bookkeeping import Repository
from gridhpo.cli import main
from gridhpo.steering.reports import results
from gridhpo.steering.runner import run_task

DATA = Path(__file__).resolve().parents[1] / "data" / "hpogrid"

pytestmark = pytest.mark.integration


def submit(project: Path, db: str) -> int:
    r = CliRunner().invoke(main, ["submit", "--hpogrid", str(project), "--db", db])
    assert r.exit_code == 0, r.stderr
    return int(r.stdout.strip())


def test_the_simple_objective_example_runs_to_the_end(home: Path, tmp_path: Path) -> None:
    db, broker = f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}"
    shutil.copytree(DATA / "simple_objective", tmp_path / "p")
    raw = yaml.safe_load((tmp_path / "p" / "config.yaml").read_text())
    del raw["grid_config"]["container"]  # CERN's image: the pilots run the trial as a process here
    raw["hpo_config"].update(num_trials=6, max_concurrent=2)
    (tmp_path / "p" / "config.yaml").write_text(yaml.safe_dump(raw))
    tid = submit(tmp_path / "p", db)
    repo = Repository(db)
    assert run_task(repo, broker, tid, pilots=2).state == "finished", repo.task(tid).message
    rows = results(repo, repo.task(tid))
    assert len(rows) == 6 and all(row["state"] == "finished" for row in rows)
    for row in rows:
        p = row["params"]
        assert row["value"] == pytest.approx((p["height"] - 14) ** 2 - abs(p["width"] - 3))


# a trial long enough (an epoch is 0.5 s) for the steering's asha decisions to reach its pilot
SCRIPT = """
import time

def descend(config, reporter):
    loss = (config["x"] - config["target"]) ** 2
    for i in range(1000):
        time.sleep(0.5)
        loss *= 0.5
        reporter(loss=loss)
"""


def test_asynchyperband_stops_trials_as_asha(home: Path, tmp_path: Path) -> None:
    db, broker = f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}"
    (tmp_path / "descend.py").write_text(SCRIPT)
    (tmp_path / "hpo_config.json").write_text(json.dumps({
        "algorithm": "random", "metric": "loss", "mode": "min", "num_trials": 8, "max_concurrent": 2,
        "stop": {"training_iteration": 9}, "scheduler": "asynchyperband",
        "scheduler_param": {"grace_period": 1, "max_t": 9, "reduction_factor": 3}}))
    (tmp_path / "model_config.json").write_text(json.dumps(
        {"script": "descend.py", "model": "descend", "param": {"target": 0.3}}))
    (tmp_path / "search_space.json").write_text(json.dumps(
        {"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}}))
    tid = submit(tmp_path, db)
    repo = Repository(db)
    assert run_task(repo, broker, tid, pilots=2).state == "finished", repo.task(tid).message
    rows = results(repo, repo.task(tid))
    assert len(rows) == 8
    states = {row["state"] for row in rows}
    assert "stopped" in states and states <= {"stopped", "finished"}, rows
    for row in rows:  # each reported once per iteration, as training_iteration; the value is its last report
        assert row["state"] == "stopped" or row["reached"] == 9, row  # a stop may come just after the 9th
        assert row["value"] == pytest.approx((row["params"]["x"] - 0.3) ** 2 * 0.5 ** row["reached"])
