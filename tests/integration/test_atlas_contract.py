"""An evaluation that knows only the ATLAS contract (tests/integration/evals/atlas_eval.py: custom
input and output names, input_ds.json, a metadata file and a metrics tarball, checkPointToSave)
run through real pilots on the embedded defaults and on PostgreSQL + RabbitMQ: from phpo's options
to the end, several points per pilot job, and under walltime kills, where the final result must
be the uninterrupted run's, bit for bit."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gridhpo.cli import main
from gridhpo.steering import phpo
from gridhpo.steering.taskfile import parse_task
from tests.resume_harness import run_walltimes

EVAL = Path(__file__).parent / "evals" / "atlas_eval.py"
STEERING = Path(__file__).parent / "evals" / "idds_steering.py"

pytestmark = pytest.mark.integration


def training_folder(tmp_path: Path) -> Path:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "part1.txt").write_text("1\n2\n3\n")
    (ds / "part2.txt").write_text("4\n")
    return ds


def reference_loss(params: dict[str, Any], ds: Path) -> float:
    """The evaluation run once, uninterrupted, without its simulated work time."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "p.json").write_text(json.dumps({**params, "epoch_seconds": 0.0}))
        (Path(d) / "input_ds.json").write_text(json.dumps(sorted(str(p) for p in ds.iterdir())))
        subprocess.run([sys.executable, str(EVAL), "p.json", "r.json"], cwd=d, check=True, capture_output=True)
        return float(json.loads((Path(d) / "r.json").read_text())["loss"])


def artifacts(db: str, task: int, store: str, dest: Path) -> str:
    r = CliRunner().invoke(main, ["results", str(task), "--artifacts", str(dest), "--store", store, "--db", db])
    assert r.exit_code == 0, r.output
    return r.stdout


def test_phpo_options_of_the_evaluation_contract_run_to_the_end(servers: tuple[str, str], home: Path,
                                                                tmp_path: Path) -> None:
    db, broker = servers
    ds = training_folder(tmp_path)
    shutil.copy(EVAL, tmp_path / "atlas_eval.py")
    (tmp_path / "space.json").write_text(json.dumps({
        "lr": {"method": "uniform", "dimension": {"low": 0.05, "high": 0.3}},
        "epochs": {"method": "uniformint", "dimension": {"low": 2, "high": 4}}}))
    opts = {"maxPoints": 4, "nParallelEvaluation": 2, "searchSpaceFile": "space.json", "outDS": "user.me.atlas/",
            "steeringExec": f"python {STEERING} %IN %OUT %NUM_POINTS %MAX_POINTS --seed 5",
            "evaluationExec": "python atlas_eval.py params.json result.json",
            "evaluationInput": "params.json", "evaluationOutput": "result.json", "trainingDS": "ds",
            "evaluationMeta": "meta.json", "evaluationMetrics": "metrics.tgz", "maxPointsPerEvaluationJob": 1}
    (tmp_path / "opts.json").write_text(json.dumps(opts))
    conv = phpo.convert(phpo.load_options(tmp_path / "opts.json"), "opts.json", tmp_path)
    assert [w.split(": ")[1] for w in conv.warnings] == ["outDS"]  # every option of the contract is used
    spec = parse_task(conv.task, "opts.json", base_dir=tmp_path)
    store = f"file://{home / 'store'}"
    run = run_walltimes(home, db, broker, store, spec, points=2, walltime=600.0)
    logs = "\n".join(p.read_text()[-1500:] for p in run.pilot_logs)
    assert run.state == "finished", logs
    assert len(run.points) == 4 and all(p["state"] == "finished" for p in run.points)
    # maxPointsPerEvaluationJob 1: each pilot job took one point and exited
    pilots = [a["pilot"] for p in run.points for a in p["attempts"]]
    assert len(set(pilots)) == len(pilots) == 4, pilots
    # each says why it exits, but the pilot of the last point may be stopped by the task's end first
    assert sum("(evaluation.points_per_job)" in p.read_text() for p in run.pilot_logs) >= 3
    for point in run.points:
        assert point["value"] == reference_loss(point["params"], ds)

    out = artifacts(db, run.task_id, store, tmp_path / "kept")
    assert "8 files" in out, out
    for point in run.points:
        folder = tmp_path / "kept" / f"point-{point['number']}" / "attempt-1"
        meta = json.loads((folder / "meta.json").read_text())
        assert meta == {"epochs": point["params"]["epochs"], "resumed": 0, "log_lines": point["params"]["epochs"]}
        with tarfile.open(folder / "metrics.tgz") as tar:
            text = tar.extractfile("mlruns/metrics.txt").read().decode()  # type: ignore[union-attr]
        assert text.startswith(f"loss {point['value']!r}")


@pytest.mark.parametrize("load", [False, True], ids=["extracted", "checkPointToLoad"])
def test_check_point_to_save_under_walltimes_gives_the_uninterrupted_result(
        servers: tuple[str, str], home: Path, tmp_path: Path, load: bool) -> None:
    db, broker = servers
    ds = training_folder(tmp_path)
    command = f"python {EVAL} params.json result.json" + (" --load ckpt.tgz" if load else "")
    task = {
        "name": "atlas-walltime",
        "search_space": {"lr": {"type": "float", "low": 0.05, "high": 0.3}, "epochs": {"type": "fixed", "value": 12},
                         "epoch_seconds": {"type": "fixed", "value": 0.5}},
        "optimiser": {"backend": "random", "seed": 2},
        "budget": {"max_points": 2, "parallel": 2, "max_attempts": 20},
        "evaluation": {
            "command": command, "training_data": sorted(str(p) for p in ds.iterdir()),
            # no pilot is killed here: a lost_after well above the heartbeat keeps a pilot starved of
            # CPU for a few seconds (the suite's other pilots) from being taken for a dead one. (An
            # attempt once ended 'lost' here with 15s too: the pilot had crashed staging model/ while
            # the evaluation renamed state.json.tmp, fixed in evaluation/savelist.py)
            "grace": "1s", "heartbeat": "1s", "lost_after": "15s",
            "files": {"input": "params.json", "output": "result.json", "meta": "meta.json", "metrics": "metrics.tgz"},
            "checkpoint": {"interval": 1, "save": ["model", "train.log"], **({"load": "ckpt.tgz"} if load else {})},
        },
    }
    spec = parse_task(task, "task.yaml", base_dir=tmp_path)
    assert spec.evaluation.checkpoint.max_size == 100_000_000  # phpo's cap, the default with a save list
    store = f"file://{home / 'store'}"
    run = run_walltimes(home, db, broker, store, spec, points=2, walltime=6.0)
    logs = "\n".join(p.read_text()[-1500:] for p in run.pilot_logs[-2:])
    assert run.state == "finished", logs
    artifacts(db, run.task_id, store, tmp_path / "kept")
    for point in run.points:
        attempts = point["attempts"]
        assert point["state"] == "finished", (point["message"], attempts)
        assert len(attempts) >= 2, point
        assert [a["end_reason"] for a in attempts] == ["walltime"] * (len(attempts) - 1) + ["finished"]
        saved = None  # each retry started from the newest checkpoint saved before it (an attempt
        for attempt in attempts:  # stopped before it changed anything saves none: the older one stays)
            assert (attempt["restored_from"] or {}).get("sha256") == saved, attempt
            if attempt["checkpoints"]:
                saved = attempt["checkpoints"][-1]["sha256"]
        assert saved is not None
        assert point["value"] == reference_loss(point["params"], ds)
        # the evaluation found its files back: it resumed from them (once per retry that made progress)
        last = tmp_path / "kept" / f"point-{point['number']}" / f"attempt-{len(attempts)}"
        meta = json.loads((last / "meta.json").read_text())
        assert meta["epochs"] == 12 and 1 <= meta["resumed"] <= len(attempts) - 1, meta


def test_a_point_whose_attempts_all_time_out_gets_the_very_large_loss(servers: tuple[str, str], home: Path,
                                                                      tmp_path: Path) -> None:
    """phpo's FAQ: a point whose attempts are all timed out gets a very large loss and the task
    goes on (here: each attempt stopped at its pilot's walltime, budget.max_attempts of them)."""
    db, broker = servers
    task = {"name": "hopeless", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
            "objective": {"exhausted_value": phpo.VERY_LARGE_LOSS},
            "optimiser": {"backend": "random", "seed": 1}, "budget": {"max_points": 1, "max_attempts": 2},
            "evaluation": {"command": "exec sleep 60", "grace": "1s", "heartbeat": "1s", "lost_after": "4s"}}
    spec = parse_task(task, "task.yaml", base_dir=tmp_path)
    run = run_walltimes(home, db, broker, f"file://{home / 'store'}", spec, points=1, walltime=4.0)
    assert run.state == "finished"  # the task went on to its end
    [point] = run.points
    assert (point["state"], point["value"]) == ("failed", phpo.VERY_LARGE_LOSS)
    assert "gave up after 2 attempts" in point["message"]
    assert [a["end_reason"] for a in point["attempts"]] == ["walltime", "walltime"]
