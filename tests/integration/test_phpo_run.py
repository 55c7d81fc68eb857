"""The public phpo example (options file and search space) submitted with `gridhpo submit --phpo`
and run to the end by real pilots, on the embedded defaults and on PostgreSQL + RabbitMQ.

Only what cannot run here changes: the two CERN registry images. The steering becomes a plain
command (gridhpo's extension) of a steering that knows only the iDDS contract; the evaluation
command stays ``bash ./exec_in_container.sh``, a script of the submit folder as in phpo.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gridhpo.bookkeeping import Repository
from gridhpo.cli import main
from gridhpo.steering import segments
from gridhpo.steering.reports import results
from gridhpo.steering.runner import run_task, run_tasks

DATA = Path(__file__).resolve().parents[1] / "data" / "phpo"
EVALS = Path(__file__).parent / "evals"
EXEC_IN_CONTAINER = """python - <<'END'
import json
p = json.load(open("input.json"))
loss = (p["batch_size"] - 20) ** 2 / 100 + (p["epoch"] - 7) ** 2 + p["cnn_block_depths_1"] \\
    + p["cnn_block_depths_2"] + (0 if p["auto_lr"] else 1)
json.dump({"status": 0, "loss": loss}, open("output.json", "w"))
END
"""

pytestmark = pytest.mark.integration


def loss(p: dict[str, Any]) -> float:
    return float((p["batch_size"] - 20) ** 2 / 100 + (p["epoch"] - 7) ** 2
                 + p["cnn_block_depths_1"] + p["cnn_block_depths_2"] + (0 if p["auto_lr"] else 1))


def test_the_phpo_example_runs_to_the_end(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    shutil.copy(DATA / "search_space_example2.json", tmp_path)
    shutil.copy(EVALS / "idds_steering.py", tmp_path)
    (tmp_path / "exec_in_container.sh").write_text(EXEC_IN_CONTAINER)
    opts = json.loads((DATA / "config_dev.json").read_text())
    del opts["steeringContainer"], opts["evaluationContainer"]
    opts["steeringExec"] = f"python {tmp_path / 'idds_steering.py'} %IN %OUT %NUM_POINTS %MAX_POINTS --seed 3"
    opts.update(maxPoints=6, nParallelEvaluation=2)
    (tmp_path / "config_dev.json").write_text(json.dumps(opts))

    r = CliRunner().invoke(main, ["submit", "--phpo", str(tmp_path / "config_dev.json"), "--db", db])
    assert r.exit_code == 0, r.stderr
    assert "trainingDS: 'user.hoge.my_training_dataset' is not a folder here" in r.stderr  # a Rucio dataset
    tid = int(r.stdout.strip())
    repo = Repository(db)
    result = run_task(repo, broker, tid, pilots=2)
    assert result.state == "finished", repo.task(tid).message
    rows = results(repo, repo.task(tid))
    assert len(rows) == 6 and all(row["state"] == "finished" for row in rows)
    assert len({json.dumps(row["params"], sort_keys=True) for row in rows}) == 6
    for row in rows:
        p = row["params"]
        assert set(p) == {"auto_lr", "batch_size", "epoch", "cnn_block_depths_1", "cnn_block_depths_2"}
        assert type(p["auto_lr"]) is bool and all(type(p[k]) is int for k in p if k != "auto_lr")
        assert 10 <= p["batch_size"] <= 30 and 5 <= p["epoch"] <= 10 and p["cnn_block_depths_1"] in (1, 2)
        assert row["value"] == pytest.approx(loss(p))


TOY = """import json, sys
targets = {"name_A": 0.2, "name_B": 0.8}
x = json.load(open("input.json"))["x"]
json.dump({"status": 0, "loss": (x - targets[sys.argv[1]]) ** 2}, open("output.json", "w"))
"""


def test_a_segmented_task_runs_each_segment_to_its_own_best(servers: tuple[str, str], tmp_path: Path) -> None:
    """The phpo documentation's seg.json: two segments, one submission, each its own search."""
    db, broker = servers
    shutil.copy(DATA / "seg.json", tmp_path)
    shutil.copy(EVALS / "idds_steering.py", tmp_path)
    (tmp_path / "toy.py").write_text(TOY)
    (tmp_path / "space.json").write_text(json.dumps({"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}}))
    opts = {"maxPoints": 5, "nParallelEvaluation": 2, "searchSpaceFile": "space.json", "segmentSpecFile": "seg.json",
            "steeringExec": f"python {tmp_path / 'idds_steering.py'} %IN %OUT %NUM_POINTS %MAX_POINTS --seed 4",
            "evaluationExec": "python toy.py %SEGMENT_NAME", "outDS": "user.me.puppet/"}
    (tmp_path / "opts.json").write_text(json.dumps(opts))

    r = CliRunner().invoke(main, ["submit", "--phpo", str(tmp_path / "opts.json"), "--db", db])
    assert r.exit_code == 0, r.stderr
    ids = [int(line) for line in r.stdout.split()]
    repo = Repository(db)
    runs = run_tasks(repo, broker, ids, pilots=1)
    assert [run.state for run in runs] == ["finished", "finished"], [repo.task(i).message for i in ids]
    report = segments.report(repo, "user.me.puppet")
    assert [row["segment"] for row in report] == ["name_A", "name_B"]
    for row, target in zip(report, (0.2, 0.8), strict=True):
        points = results(repo, repo.task(row["id"]))
        assert len(points) == 5 and all(p["state"] == "finished" for p in points)
        # every loss is this segment's own function of x, and the best point is this segment's
        for p in points:
            assert p["value"] == pytest.approx((p["params"]["x"] - target) ** 2)
        best = min(points, key=lambda p: p["value"])
        assert (row["best_point"], row["best_value"]) == (best["number"], best["value"])
