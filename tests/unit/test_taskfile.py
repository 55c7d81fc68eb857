from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gridhpo.errors import ConfigError
from gridhpo.protocol.evaluation import memory_bytes
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
    ({"evaluation": {"command": "x", "resources": {"memory": "lots"}}},
     "task.yaml: evaluation.resources.memory: 'lots' is not a size such as 512m, 2g or 2GiB"),
    # the attack: a value made to backtrack in the old pattern, at every point start on every pilot
    ({"evaluation": {"command": "x", "resources": {"memory": "1" + " " * 200_000 + "x"}}},
     "evaluation.resources.memory: '1                               ' is not a size"),
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


TAIL = "search_space: {x: {type: float, low: 0, high: 1}}\nevaluation: {command: 'true'}\n"


@pytest.mark.parametrize(("name", "text", "message"), [
    ("dup.yaml", "name: t\nname: u\n" + TAIL, "dup.yaml: line 2: duplicate key 'name' (first given on line 1)"),
    ("dup-deep.yaml", "name: t\nsearch_space:\n  x: {type: float, low: 0, high: 1}\n  x: {type: int, low: 0, high: 9}\n"
     "evaluation: {command: 'true'}\n", "dup-deep.yaml: line 4: duplicate key 'x' (first given on line 3)"),
    ("dup.json", '{"name": "t",\n "search_space": {"x": {"type": "float", "low": 0, "high": 1}},\n'
     ' "evaluation": {"command": "true"},\n "name": "u"}',
     "dup.json: line 4: duplicate key 'name' (first given on line 1)"),
    ("keys.yaml", "name: t\nsearch_space:\n  1: {type: float, low: 0, high: 1}\n  '1': {type: int, low: 0, high: 9}\n"
     "evaluation: {command: 'true'}\n", "keys.yaml: line 3: key 1 is not a string; quote it"),
    ("newline.yaml", 'name: "abc\\n"\n' + TAIL, "newline.yaml: name: 'abc\\n' must be letters"),
    ("control.yaml", 'name: "a\\tb"\n' + TAIL, "control.yaml: name: 'a\\tb' must be letters"),
    ("digits.yaml", "name: '12'\n" + TAIL, "digits.yaml: name: '12' is all digits, which would read as a task id"),
    ("inf.yaml", "name: t\nsearch_space: {x: {type: float, low: 0, high: 1}}\n"
     "evaluation: {command: 'true', timeout: .inf}\n", "inf.yaml: evaluation.timeout: inf is not a duration"),
    ("huge.yaml", "name: t\nsearch_space: {x: {type: float, low: 0, high: 1}}\n"
     f"evaluation: {{command: 'true', grace: '{'9' * 400}s'}}\n", "huge.yaml: evaluation.grace: '999"),
    ("nan.yaml", "name: t\nsearch_space: {x: {type: fixed, value: .nan}}\nevaluation: {command: 'true'}\n",
     "nan.yaml: search_space.x.value: nan is not a string, finite number"),
    ("nan.json", '{"name": "t", "objective": {"failure_value": NaN}}', "nan.json: NaN is not a number a task file"),
    ("syntax.yaml", "name: t\nsearch_space: {x: {type: float, low: 0, high: 1}\nevaluation: {command: 'true'}\n",
     "syntax.yaml: not valid YAML: line 3, column 1: expected ',' or '}'"),
    ("syntax.json", '{"name": "t",\n "x": [1, 2\n}', "syntax.json: not valid JSON: line 3, column 1: Expecting ','"),
])
def test_what_a_task_file_says_is_what_it_means(tmp_path: Path, name: str, text: str, message: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_task(p)
    assert str(info.value).startswith(str(tmp_path)) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_stored_spec_is_held_to_the_same_rules() -> None:
    """A spec written by hand into the bookkeeping: an int parameter key, an all-digit name."""
    good = load_task_dict()
    bad_key = {**good, "search_space": {1: {"type": "float", "low": 0, "high": 1}}}
    with pytest.raises(ConfigError, match="parameter name 1 is not a string"):
        TaskSpec.from_dict(bad_key)
    with pytest.raises(ConfigError, match="is all digits"):
        TaskSpec.from_dict({**good, "name": "7"})


def test_submit_refuses_an_all_digit_name_given_on_the_command_line(home: Path) -> None:
    from click.testing import CliRunner

    from gridhpo.cli import main

    r = CliRunner().invoke(main, ["submit", str(REPO / "examples/branin/task.yaml"), "--name", "1"])
    assert r.exit_code == 1 and "--name: '1' is all digits" in r.stderr


def load_task_dict() -> dict[str, object]:
    return {**GOOD, "name": "t"}


@pytest.mark.parametrize(("algorithm", "hint"), [("CMAA", "did you mean 'CMA'"), ("cma", "did you mean 'CMA'"),
                                                 ("nothing-like-it", "")])
def test_a_nevergrad_algorithm_typo_is_a_short_line(home: Path, tmp_path: Path, algorithm: str, hint: str) -> None:
    """nevergrad registers hundreds of optimisers: the error names close ones and where the
    rest are, it does not list them all (it was a 9,679-character line)."""
    from click.testing import CliRunner

    from gridhpo.cli import main

    p = write(tmp_path, {**GOOD, "optimiser": {"backend": "nevergrad", "algorithm": algorithm}})
    r = CliRunner().invoke(main, ["submit", str(p)])
    err = r.stderr.strip()
    assert r.exit_code == 1 and "\n" not in err and len(err) < 300, err
    assert f"unknown nevergrad optimiser {algorithm!r}" in err and hint in err
    assert "known, all in nevergrad.optimizers.registry" in err


def test_a_short_registry_is_still_listed_in_full() -> None:
    from gridhpo.errors import unknown_name

    assert str(unknown_name("backend", "radnom", ["grid", "random"])) == \
        "unknown backend 'radnom'; did you mean 'random'? (known: grid, random)"


@pytest.mark.parametrize(("text", "size"), [("512m", 512 << 20), ("2g", 2 << 30), (" 2GiB ", 2 << 30),
                                            ("1073741824", 1 << 30), ("1.5k", 1536), ("lots", None),
                                            ("1" + " " * 200_000 + "x", None), ("9" * 400 + "t", None)])
def test_memory_sizes_are_read_as_docker_takes_them(text: str, size: int | None) -> None:
    assert memory_bytes(text) == size
