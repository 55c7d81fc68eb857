"""phpo's options file -> task (steering/phpo.py), without and through the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gridhpo.cli import main
from gridhpo.errors import ConfigError
from gridhpo.steering import phpo
from gridhpo.steering.taskfile import load_task, parse_task

DATA = Path(__file__).resolve().parents[1] / "data" / "phpo"


def example(tmp_path: Path, **changes: Any) -> Path:
    """The public phpo documentation's example (config_dev.json), with ``changes`` (None deletes)."""
    shutil.copy(DATA / "search_space_example2.json", tmp_path / "search_space_example2.json")
    raw = json.loads((DATA / "config_dev.json").read_text())
    for k, v in changes.items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = v
    path = tmp_path / "config_dev.json"
    path.write_text(json.dumps(raw))
    return path


def conv(path: Path) -> phpo.Conversion:
    return phpo.convert(phpo.load_options(path), str(path), path.parent)


def test_the_public_example_becomes_a_steering_task(tmp_path: Path) -> None:
    c = conv(example(tmp_path))
    t = c.task
    assert t["optimiser"]["backend"] == "steering"
    assert t["optimiser"]["image"] == "gitlab-registry.cern.ch/zhangruihpc/steeringcontainer:latest"
    assert t["optimiser"]["command"].startswith('/bin/bash -c "hpogrid generate --n_point=%NUM_POINTS')
    assert t["optimiser"]["options"]["points_per_call"] == 2  # phpo's nPointsPerIteration default
    assert t["optimiser"]["options"]["opt_space"]["cnn_block_depths_1"]["dimension"]["categories"] == [1, 1, 2]
    assert t["budget"] == {"max_points": 10, "parallel": 1, "min_queued": 0, "max_attempts": 3}
    assert t["evaluation"]["image"] == "docker://gitlab-registry.cern.ch/zhangruihpc/evaluationcontainer:mlflow"
    assert t["evaluation"]["command"].endswith("; bash ./exec_in_container.sh")
    assert t["evaluation"]["checkpoint"] == {"interval": "5m"}
    assert t["evaluation"]["files"] == {"metrics": "metrics.tgz"}  # kept per attempt
    assert t["objective"]["exhausted_value"] == phpo.VERY_LARGE_LOSS
    assert t["name"] == "config_dev"
    assert [w.split(": ")[1] for w in c.warnings] == ["trainingDS", "cnn_block_depths_1"]  # a Rucio dataset
    spec = parse_task(t, "x")
    assert spec.search_space.by_name["cnn_block_depths_1"].to_dict()["choices"] == [1, 2]
    assert spec.optimiser.image == t["optimiser"]["image"]


def test_docker_arguments_and_plain_commands(tmp_path: Path) -> None:
    docker_args = ('run --rm -v "$(pwd)":/HPOiDDS gitlab-registry.cern.ch/zhangruihpc/steeringcontainer:0.0.1 '
                   '/bin/bash -c "hpogrid generate --n_point=%NUM_POINTS --max_point=%MAX_POINTS '
                   '--infile=/HPOiDDS/%IN --outfile=/HPOiDDS/%OUT -l nevergrad"')
    o = conv(example(tmp_path, steeringContainer=None, steeringExec=docker_args)).task["optimiser"]
    assert o["image"] == "gitlab-registry.cern.ch/zhangruihpc/steeringcontainer:0.0.1"
    assert o["options"]["mount"] == "/HPOiDDS"
    assert o["command"] == ("/bin/bash -c 'hpogrid generate --n_point=%NUM_POINTS --max_point=%MAX_POINTS "
                            "--infile=/HPOiDDS/%IN --outfile=/HPOiDDS/%OUT -l nevergrad'")
    plain = conv(example(tmp_path, steeringContainer=None, steeringExec="python opt.py %IN %OUT")).task["optimiser"]
    assert plain == {"backend": "steering", "command": "python opt.py %IN %OUT", "options": plain["options"]}


def test_dump_json_output_is_read(tmp_path: Path) -> None:
    """--dumpJson writes every dest, most of them null or default, and the submission's result."""
    path = example(tmp_path, loadJson=None, maxPoints="20", nParallelEvaluation=3, maxEvaluationJobs=40,
                   minUnevaluatedPoints=None, evaluationInput="input.json", evaluationTrainingData="input_ds.json",
                   site="ANALY_XYZ", outDS="user.hoge.test/", vomsRoles=None, noSubmit=False, python3=False,
                   architecture="", verbose=False, returnCode=None, returnOut="submitted", jediTaskID=123)
    c = conv(path)
    assert c.task["budget"]["max_points"] == 20 and c.task["budget"]["parallel"] == 3  # "20" as phpo reads it
    assert c.task["name"] == "user.hoge.test"
    ignored = {w.split(": ")[1] for w in c.warnings}
    assert ignored == {"trainingDS", "cnn_block_depths_1", "site", "outDS",
                       "maxEvaluationJobs", "returnOut", "jediTaskID"}
    assert any("ANALY_XYZ" not in w and "site: ignored (PanDA chooses sites" in w for w in c.warnings)


@pytest.mark.parametrize(("changes", "message"), [
    ({"maxPoint": 5}, "unknown phpo option 'maxPoint'; did you mean 'maxPoints'"),
    ({"maxPoints": "many"}, "maxPoints: 'many' is not a non-negative integer"),
    ({"nParallelEvaluation": True}, "nParallelEvaluation: True is not a non-negative integer"),
    ({"nPointsPerIteration": 0}, "nPointsPerIteration: 0 must be at least 1"),
    ({"steeringExec": 5}, "steeringExec: 5 is not a non-empty string"),
    ({"steeringExec": None}, "steeringExec: is missing"),
    ({"segmentSpecFile": "nowhere.json"}, "cannot read the segment spec file"),
    ({"evaluationOutput": "dir/result.json"}, "evaluationOutput: 'dir/result.json' is not a file name of the "
                                              "work directory (one name, no folder)"),
    ({"evaluationMeta": "output.json"}, "evaluationMeta: 'output.json' is evaluationOutput's name too"),
    ({"checkPointToSave": "a,../up"}, "checkPointToSave: '../up' is not a path inside the work directory"),
    ({"checkPointToLoad": "ckpt.tgz"}, "checkPointToLoad: needs checkPointToSave"),
    ({"trainingDS": [1]}, "trainingDS: [1] is not a list of file names"),
    ({"maxPointsPerEvaluationJob": -1}, "maxPointsPerEvaluationJob: -1 is not a non-negative integer"),
    ({"steeringContainer": None, "steeringExec": "run --gpus all img gen %IN %OUT"},
     "docker option '--gpus' is not supported"),
    ({"steeringContainer": None, "steeringExec": "run -v /data:/data img gen %IN %OUT"},
     "volume '/data:/data': only the working folder can be mounted"),
    ({"searchSpaceFile": "nowhere.json"}, "cannot read the search space file"),
])
def test_bad_options_are_one_line_errors(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = example(tmp_path, **changes)
    with pytest.raises(ConfigError) as err:
        conv(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(path)) or "nowhere.json" in str(err.value)


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_cli_dry_run_prints_a_task_file_that_loads(home: Path, tmp_path: Path) -> None:
    code, out, err = invoke("submit", "--phpo", str(example(tmp_path)), "--dry-run")
    assert code == 0, err
    assert err.count("gridhpo: warning: ") == 2 and "trainingDS: 'user.hoge.my_training_dataset' is not a folder" in err
    task_file = tmp_path / "task.yaml"
    task_file.write_text(out)
    spec = load_task(task_file)
    assert spec.optimiser.backend == "steering" and spec.budget.max_points == 10
    assert yaml.safe_load(out)["optimiser"]["options"]["opt_space"] == json.loads(
        (DATA / "search_space_example2.json").read_text())
    assert not (home / "gridhpo.db").exists()  # nothing submitted


@pytest.mark.parametrize(("text", "message"), [
    ('{"maxPoints": 10, "maxPonits": 3}', "unknown phpo option 'maxPonits'"),
    ('{"maxPoints": [10]}', "maxPoints: [10] is not a non-negative integer"),
    ('{"maxPoints": 10,}', "not valid JSON (phpo --loadJson reads JSON)"),
    ('[1, 2]', "a phpo options file is a JSON object"),
])
def test_cli_bad_phpo_files(home: Path, tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "opts.json"
    bad.write_text(text)
    code, _, err = invoke("submit", "--phpo", str(bad))
    assert code == 1
    assert err.startswith(f"gridhpo: error: {bad}") and message in err and err.count("\n") == 1, err


def test_cli_needs_one_source(home: Path, tmp_path: Path) -> None:
    code, _, err = invoke("submit")
    assert code == 2 and "give a TASK_FILE, --phpo OPTIONS or --hpogrid PROJECT (exactly one)" in err
