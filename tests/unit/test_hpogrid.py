"""hpogrid project configurations -> task (steering/hpogrid.py), the trial runner, and the CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gridhpo.cli import main
from gridhpo.errors import ConfigError
from gridhpo.steering import hpogrid
from gridhpo.steering.taskfile import load_task, parse_task

DATA = Path(__file__).resolve().parents[1] / "data" / "hpogrid"


def conv(path: Path) -> hpogrid.Conversion:
    return hpogrid.convert(hpogrid.load_project(path))


def test_simple_objective_project_folder() -> None:
    c = conv(DATA / "simple_objective")
    t = c.task
    assert t["name"] == "simple_objective"
    assert t["optimiser"] == {"backend": "hyperopt"}
    assert t["objective"] == {"metric": "loss", "mode": "min"}
    assert t["budget"] == {"max_points": 200, "parallel": 3}
    assert t["evaluation"]["source_dir"] == str(DATA / "simple_objective")
    assert t["evaluation"]["image"].endswith("alkaid-qt/hpogrid:latest")
    assert "early_stopping" not in t  # one report per trial (stop's default): asha would stop nothing
    fields = [w.split(": ")[1] for w in c.warnings]
    assert fields == ["grid_config.site", "hpo_config.scheduler"], c.warnings  # the image sees the scripts folder
    spec = parse_task(t, "x")
    assert spec.search_space.by_name["height"].to_dict()["low"] == -100


def test_nevergrad_method_and_max_mode() -> None:
    mnist = conv(DATA / "MNIST_CNN.yaml").task
    assert mnist["optimiser"] == {"backend": "nevergrad", "algorithm": "DoubleFastGADiscreteOnePlusOne"}
    parse_task(mnist, "MNIST_CNN.yaml")  # nevergrad knows the optimiser
    bbyy = conv(DATA / "BBYY_SM.yaml")
    assert bbyy.task["objective"] == {"metric": "auc", "mode": "max"}
    assert bbyy.task["budget"]["max_points"] == 1000
    assert " 1 auc " in bbyy.task["evaluation"]["command"].split("\n")[0]
    assert any("grid_config.inDS: ignored (a Rucio dataset" in w for w in bbyy.warnings)


def test_folder_of_separate_files() -> None:
    c = conv(DATA / "my_example")
    t = c.task
    assert t["name"] == "my_example" and t["optimiser"] == {"backend": "random"}
    assert t["budget"] == {"max_points": 100, "parallel": 3}  # hpogrid's max_concurrent default
    first = t["evaluation"]["command"].split("\n")[0]
    assert first.startswith("python3 - train.py advanced_rnn 1 loss ")
    assert '"epochs": 100' in first
    assert [w.split(": ")[1] for w in c.warnings] == ["inDS", "site"]
    assert parse_task(t, "x").budget.max_points == 100


def project(tmp_path: Path, **hpo: Any) -> Path:
    raw = yaml.safe_load((DATA / "simple_objective" / "config.yaml").read_text())
    for k, v in hpo.items():
        if v is None:
            raw["hpo_config"].pop(k, None)
        else:
            raw["hpo_config"][k] = v
    shutil.copy(DATA / "simple_objective" / "simple_objective.py", tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_schedulers_and_algorithms_map(tmp_path: Path) -> None:
    t = conv(project(tmp_path, stop={"training_iteration": 27},
                     scheduler_param={"grace_period": 1, "max_t": 27, "reduction_factor": 3})).task
    assert t["early_stopping"] == {"scheduler": "asha", "resource": "training_iteration", "min_resource": 1,
                                   "max_resource": 27, "reduction_factor": 3}
    assert " 27 loss " in t["evaluation"]["command"].split("\n")[0]
    parse_task(t, "x")
    for algorithm, backend in (("bayesian", "hyperopt"), ("tune", "random"), ("skopt", "skopt"), ("grid", "grid")):
        assert conv(project(tmp_path, algorithm=algorithm)).task["optimiser"]["backend"] == backend


@pytest.mark.parametrize(("changes", "message"), [
    ({"scheduler": "pbt"}, "hpo_config.scheduler: 'pbt' is not supported: population based training"),
    ({"scheduler": "bohbhyperband"}, "hpo_config.scheduler: 'bohbhyperband' is not supported"),
    ({"algorithm": "bohb"}, "hpo_config.algorithm: 'bohb' is not supported: gridhpo has no BOHB"),
    ({"algorithm": "ax"}, "hpo_config.algorithm: 'ax' is not supported"),
    ({"algorithm": "hyperop"}, "unknown algorithm 'hyperop'; did you mean 'hyperopt'"),
    ({"algoritm": "random"}, "hpo_config.algoritm: unknown hpo_config key 'algoritm'; did you mean 'algorithm'"),
    ({"num_trials": "many"}, "hpo_config.num_trials: 'many' is not an integer"),
    ({"num_trials": None}, "hpo_config.num_trials: is missing"),
    ({"max_concurrent": 0}, "hpo_config.max_concurrent: 0 must be an integer of at least 1"),
    ({"mode": "minimum"}, "hpo_config.mode: 'minimum' is not 'min' or 'max'"),
    ({"stop": {"loss": 0.1}}, "hpo_config.stop.loss: only training_iteration is supported"),
    ({"stop": {"training_iteration": 9}, "scheduler_param": {"brackets": 3}},
     "hpo_config.scheduler_param.brackets: 3: gridhpo's asha has one bracket"),
])
def test_bad_project_files_are_one_line_errors(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = project(tmp_path, **changes)
    with pytest.raises(ConfigError) as err:
        conv(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), err.value
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("file", "text", "message"), [
    ("hpo_config.json", '{"num_trials": 5, "metrc": "loss"}', "hpo_config.json: metrc: unknown hpo_config key"),
    ("hpo_config.json", '{"num_trials": true}', "hpo_config.json: num_trials: True is not an integer"),
    ("model_config.json", '{"script": "train.py"}', "model_config.json: model: is missing"),
    ("model_config.json", '{"script": "t.py", "model": "m", "param": [1]}', "model_config.json: param: [1] is not"),
    ("grid_config.json", '{"container": 5}', "grid_config.json: container: 5 is not a string or null"),
    ("search_space.json", "[]", "search_space.json: search_space: must be a non-empty mapping"),
    ("search_space.json", '{"lr": {"method": "logunifrom", "dimension": {}}}',
     "search_space.json: search_space.lr.method: unknown method 'logunifrom'; did you mean 'loguniform'"),
])
def test_bad_separate_files_name_file_and_key(tmp_path: Path, file: str, text: str, message: str) -> None:
    shutil.copytree(DATA / "my_example", tmp_path / "p")
    (tmp_path / "p" / file).write_text(text)
    with pytest.raises(ConfigError) as err:
        conv(tmp_path / "p")
    assert message in str(err.value) and str(tmp_path / "p" / file) in str(err.value), err.value


def test_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not an hpogrid project: .*hpo_config\.json, model_config\.json"):
        hpogrid.load_project(tmp_path)


def run_trial(tmp_path: Path, script: str, model: str, iterations: int, point: dict[str, Any],
              param: dict[str, Any] | None = None) -> dict[str, Any]:
    """The evaluation command exactly as a pilot runs it: in a work folder, with GRIDHPO_TASK_DIR."""
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "train.py").write_text(script)
    work = tmp_path / "work"
    work.mkdir()
    (work / "input.json").write_text(json.dumps(point))
    section = hpogrid.Section({"script": "train.py", "model": model, "param": param or {}}, "m.json", "")
    command = hpogrid.trial_command(section, iterations, "loss")
    r = subprocess.run(["sh", "-c", command], cwd=work, capture_output=True, text=True, check=False,
                       env={**os.environ, "GRIDHPO_TASK_DIR": str(tmp_path / "scripts")})
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    return {"output": json.loads((work / "output.json").read_text()), "metrics": lines}


def test_trial_runs_a_function_model(tmp_path: Path) -> None:
    shutil.copy(DATA / "simple_objective" / "simple_objective.py", tmp_path / "x.py")
    r = run_trial(tmp_path, (tmp_path / "x.py").read_text(), "simple_objective", 1, {"height": 16.0, "width": 1.0})
    assert r["output"] == {"status": 0, "training_iteration": 1, "loss": 2.0}


def test_trial_stops_a_function_at_its_iterations_and_merges_param(tmp_path: Path) -> None:
    script = ("def f(config, reporter):\n"
              "    for i in range(100):\n"
              "        reporter(loss=config['scale'] * config['x'] / (i + 1))\n")
    r = run_trial(tmp_path, script, "f", 3, {"x": 6.0}, param={"scale": 2, "x": 0})
    assert [m["loss"] for m in r["metrics"]] == [12.0, 6.0, 4.0]  # the point's x wins over param's
    assert r["output"]["loss"] == 4.0 and r["output"]["training_iteration"] == 3


def test_trial_runs_a_trainable_class(tmp_path: Path) -> None:
    script = ("class Model:\n"
              "    def __init__(self, config):\n"
              "        self.config, self.t = config, 0\n"
              "    def train(self):\n"
              "        self.t += 1\n"
              "        return {'loss': self.config['x'] - self.t}\n")
    r = run_trial(tmp_path, script, "Model", 2, {"x": 10})
    assert r["output"]["loss"] == 8 and len(r["metrics"]) == 2


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_cli_dry_run_prints_a_task_file_that_loads(home: Path, tmp_path: Path) -> None:
    code, out, err = invoke("submit", "--hpogrid", str(DATA / "MNIST_CNN.yaml"), "--dry-run")
    assert code == 0, err
    assert "gridhpo: warning: " in err and "grid_config.site: ignored" in err
    (tmp_path / "task.yaml").write_text(out)
    spec = load_task(tmp_path / "task.yaml")
    assert spec.optimiser.backend == "nevergrad" and spec.budget.max_points == 200
    assert "  command: |\n    python3 - mnist_cnn.py MNIST_CNN 1 loss '{}' <<'GRIDHPO_HPOGRID_TRIAL'\n" in out
    assert spec.evaluation.command == hpogrid.convert(hpogrid.load_project(DATA / "MNIST_CNN.yaml")).task[
        "evaluation"]["command"]
    assert not (home / "gridhpo.db").exists()


def test_cli_submits_and_refuses_bad_files(home: Path, tmp_path: Path) -> None:
    code, out, err = invoke("submit", "--hpogrid", str(DATA / "my_example"))
    assert code == 0, err
    assert out.strip().isdigit()
    path = project(tmp_path, algorithm="ax")
    code, _, err = invoke("submit", "--hpogrid", str(path))
    assert code == 1 and err.startswith(f"gridhpo: error: {path}: hpo_config.algorithm") and err.count("\n") == 1


def test_a_project_without_a_name_is_named_after_its_folder(tmp_path: Path) -> None:
    raw = yaml.safe_load((DATA / "simple_objective" / "config.yaml").read_text())
    del raw["project_name"], raw["scripts_path"]
    (tmp_path / "bbyy").mkdir()
    (tmp_path / "bbyy" / "config.json").write_text(json.dumps(raw))
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(raw))
    assert conv(tmp_path / "bbyy").task["name"] == "bbyy"
    assert conv(tmp_path / "bbyy").task["evaluation"]["source_dir"] == str(tmp_path / "bbyy")
    assert conv(tmp_path / "other.yaml").task["name"] == "other"
