from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gridhpo.errors import ConfigError
from gridhpo.steering.taskfile import TaskSpec, load_task

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "name": "t1",
    "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "objective": {"metric": "loss", "mode": "min"},
    "optimiser": {"backend": "random", "seed": 3},
    "budget": {"max_points": 10, "parallel": 2, "max_failures": 3, "max_attempts": 2},
    "evaluation": {"command": "true", "checkpoint": {"interval": "5m"}, "resources": {"cpus": 1, "gpus": 0}},
}


def write(tmp_path: Path, data: object, suffix: str = ".yaml") -> Path:
    p = tmp_path / f"task{suffix}"
    p.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_yaml_and_json_give_the_same_spec(tmp_path: Path, suffix: str) -> None:
    spec = load_task(write(tmp_path, GOOD, suffix))
    assert spec.name == "t1" and spec.budget.parallel == 2 and spec.optimiser.seed == 3
    assert spec.evaluation.checkpoint.interval == 300.0
    assert spec.evaluation.source_dir == str(tmp_path.resolve())


def test_stored_form_round_trips(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, GOOD))
    again = TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again.to_dict() == spec.to_dict()


@pytest.mark.parametrize(("patch", "message"), [
    ({"budjet": {}}, "task.yaml: unknown key 'budjet'; did you mean 'budget'"),
    ({"budget": {"max_points": 0}}, "task.yaml: budget.max_points: 0 is not an integer >= 1"),
    ({"budget": {"paralel": 2}}, "did you mean 'parallel'?"),
    ({"objective": {"mode": "minimise"}}, "task.yaml: objective.mode: 'minimise' is not one of min, max"),
    ({"optimiser": {"backend": "radnom"}},
     "optimiser.backend: unknown optimiser backend 'radnom'; did you mean 'random'?"),
    ({"evaluation": {}}, "evaluation: needs 'command'"),
    ({"evaluation": {"python": "mod:fn", "command": "x"}}, "give either 'python'"),
    ({"evaluation": {"command": "x", "timeout": "ten minutes"}}, "evaluation.timeout: 'ten minutes' is not a duration"),
    ({"name": "bad name!"}, "task.yaml: name: 'bad name!' must be letters"),
    ({"search_space": {"x": {"type": "int", "low": 5, "high": 1}}}, "task.yaml: search_space.x: low (5) must be less"),
    ({"early_stopping": {"scheduler": "ashaa"}}, "early_stopping.scheduler: unknown scheduler 'ashaa'"),
])
def test_bad_task_files_get_one_line_errors(tmp_path: Path, patch: dict[str, object], message: str) -> None:
    data = {**GOOD, **patch}
    with pytest.raises(ConfigError) as info:
        load_task(write(tmp_path, data))
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith(str(tmp_path / "task.yaml")) or message.startswith("task.yaml")


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the task file"):
        load_task(tmp_path / "nope.yaml")
    p = tmp_path / "t.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_task(p)


@pytest.mark.parametrize("example", sorted(str(p.relative_to(REPO)) for p in (REPO / "examples").rglob("task*.yaml")))
def test_every_example_task_file_is_valid(example: str) -> None:
    spec = load_task(REPO / example)
    assert spec.budget.max_points >= 1
