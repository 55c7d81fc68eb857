"""The steering backend's own rules: what %IN holds, duplicates, and the task file's checks."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gridhpo.errors import ConfigError, OptimiserError
from gridhpo.steering import optimisers
from gridhpo.steering.space import parse_space
from gridhpo.steering.taskfile import parse_task

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def make(command: str, **kw: Any) -> optimisers.Optimiser:
    options = {"command": command, **kw.pop("options", {})}
    return optimisers.get("steering")(parse_space(SPACE), options=options, **kw)


def test_in_holds_every_point_with_its_minimised_loss(tmp_path: Path) -> None:
    seen = tmp_path / "in.json"
    opt = make(f"cp %IN {seen}; echo '[{{\"x\": 0.25}}, {{\"x\": 0.75}}]' > %OUT", mode="max", max_points=5)
    a = opt.ask(1)
    assert json.loads(seen.read_text()) == {"points": [], "opt_space": parse_space(SPACE).to_dict()}
    assert [s.params for s in a] == [{"x": 0.25}]
    opt.tell(a[0].number, 2.0)
    b = opt.ask(1)  # the second point of the same run: the steering does not run again
    assert [s.params for s in b] == [{"x": 0.75}]
    assert json.loads(seen.read_text())["points"] == []
    opt.tell_failure(b[0].number)
    with pytest.raises(OptimiserError, match="proposed only points already asked"):
        opt.ask(1)  # the same two points again: nothing new, run again, then the task fails
    assert json.loads(seen.read_text())["points"] == [[{"x": 0.25}, -2.0], [{"x": 0.75}, None]]


def test_a_repeat_within_one_output_is_dropped(tmp_path: Path) -> None:
    opt = make("echo '[{\"x\": 0.5}, {\"x\": 0.5}, {\"x\": 0.1}]' > %OUT", options={"retries": 0})
    assert [s.params for s in opt.ask(2)] == [{"x": 0.5}, {"x": 0.1}]


def test_placeholders_are_replaced(tmp_path: Path) -> None:
    out = tmp_path / "args.txt"
    opt = make(f"echo %NUM_POINTS %MAX_POINTS %SEED %IN %OUT > {out}; echo '[]' > %OUT", seed=9, max_points=7,
               options={"points_per_call": 3})
    assert opt.ask(1) == [] and opt.exhausted
    assert out.read_text().split() == ["3", "7", "9", "idds_input.json", "output.json"]


def task(optimiser: dict[str, Any]) -> Any:
    return parse_task({"name": "t", "search_space": SPACE, "optimiser": optimiser,
                       "evaluation": {"command": "true"}}, "t.yaml")


@pytest.mark.parametrize(("optimiser", "message"), [
    ({"backend": "steering"}, "optimiser.command: the steering backend needs the command"),
    ({"backend": "steering", "command": "run.sh %IN"}, "has no %OUT"),
    ({"backend": "random", "command": "run.sh %OUT"}, "optimiser.command: only the steering backend runs a program"),
    ({"backend": "steering", "command": "a %OUT", "options": {"command": "b"}},
     "optimiser.options.command: give it as optimiser.command"),
    ({"backend": "steering", "command": "a %OUT", "options": {"mount": "/w"}}, "optimiser.options.mount"),
    ({"backend": "steering", "command": "a %OUT", "options": {"retries": -1}}, "retries: -1 is not an integer >= 0"),
    ({"backend": "steering", "command": "a %OUT", "timeout": "soon"}, "optimiser.timeout: 'soon' is not a duration"),
])
def test_task_file_checks(optimiser: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        task(optimiser)
    assert str(err.value).startswith("t.yaml: ") and message in str(err.value)


def test_task_file_keeps_the_program() -> None:
    spec = task({"backend": "steering", "command": "a %OUT", "image": "img:1", "timeout": "2m"})
    assert (spec.optimiser.command, spec.optimiser.image, spec.optimiser.timeout) == ("a %OUT", "img:1", 120.0)
    again = type(spec).from_dict(spec.to_dict())
    assert again.optimiser == spec.optimiser
