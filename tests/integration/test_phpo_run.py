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
from gridhpo.steering.reports import results
from gridhpo.steering.runner import run_task

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
    assert "evaluationMetrics: ignored" in r.stderr and "trainingDS: ignored" in r.stderr
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
