"""The documented limits of a task (docs/taskfile.md, "Limits"): refused at submit, one line,
before anything of the size asked for is built."""
from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridhpo.errors import ConfigError
from gridhpo.steering.optimisers.grid import GridSearch
from gridhpo.steering.space import parse_space
from gridhpo.steering.taskfile import load_task

GOOD: dict[str, Any] = {
    "name": "t1",
    "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "optimiser": {"backend": "random", "seed": 3},
    "evaluation": {"command": "true"},
}


def nested(depth: int) -> Any:
    out: Any = 1
    for _ in range(depth):
        out = {"a": out}
    return out


@pytest.mark.parametrize(("patch", "message"), [
    ({"budget": {"max_points": 10 ** 20}}, "budget.max_points: 100000000000000000000 is over the limit of 1000000"),
    ({"budget": {"parallel": 10 ** 20}}, "budget.parallel: 100000000000000000000 is over the limit of 10000"),
    ({"budget": {"min_queued": 10 ** 6}}, "budget.min_queued: 1000000 is over the limit of 10000"),
    ({"budget": {"max_attempts": 1000}}, "budget.max_attempts: 1000 is over the limit of 100"),
    ({"optimiser": {"seed": 2 ** 40}}, "optimiser.seed: 1099511627776 is over the limit of 4294967295"),
    ({"search_space": {"n": {"type": "int", "low": -(2 ** 63), "high": 2 ** 63}}},
     "search_space.n.low: -9223372036854775808 is beyond the limit of ±9007199254740992 (2**53)"),
    ({"search_space": {"x": {"type": "float", "low": 0, "high": 1, "step": 1e-300}}},
     "search_space.x.step: 1e-300 cuts the range 0.0..1.0 into more than 1000000000000 values (the limit)"),
    ({"optimiser": {"backend": "grid", "options": {"resolution": 10 ** 9}}},
     "optimiser.options.resolution: 1000000000 is not an integer from 2 to 10000"),
    ({"optimiser": {"backend": "skopt", "options": {"acq_func_kwargs": nested(12)}}},
     "nested more than 8 levels"),
    ({"optimiser": {"backend": "skopt", "options": {"acq_func_kwargs": {"xi": list(range(20_000))}}}},
     "optimiser.options: holds more than 10000 values"),
    ({"optimiser": {"backend": "skopt", "options": {"acq_func_kwargs": {"xi": float("nan")}}}},
     "optimiser.options.acq_func_kwargs.xi: nan is not a finite number"),
    ({"early_stopping": {"options": {"k": float("inf")}}}, "early_stopping.options.k: inf is not a finite number"),
    ({"search_space": {f"p{i}": {"type": "fixed", "value": i} for i in range(1001)}},
     "search_space: 1001 parameters is over the limit of 1000"),
    ({"search_space": {"c": {"type": "fixed", "value": 10 ** 30}}},
     "search_space.c.value: 1000000000000000000000000000000 is not a string, finite number (ints within ±2**53)"),
    ({"search_space": {"c": {"type": "categorical", "choices": [1, -(2 ** 60)]}}},
     "search_space.c.choices: -1152921504606846976 is not a string, finite number (ints within ±2**53)"),
    ({"search_space": {"c": {"type": "categorical", "choices": list(range(10_001))}}},
     "search_space.c.choices: 10001 choices is over the limit of 10000"),
])
def test_sizes_over_the_limits_are_refused_at_submit(tmp_path: Path, patch: dict[str, Any], message: str) -> None:
    p = tmp_path / "task.yaml"
    p.write_text(yaml.safe_dump({**GOOD, **patch}))
    with pytest.raises(ConfigError) as info:
        load_task(p)
    assert message in str(info.value) and "\n" not in str(info.value) and str(p) in str(info.value)


BOMB = """\
name: bomb
search_space: {x: {type: float, low: 0, high: 1}}
evaluation: {command: "true"}
optimiser:
  backend: skopt
  options:
    acq_func_kwargs:
      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
      i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Nine levels of nine aliases: 387 million strings once expanded (the issue's submit
    hung above 1 GB). It is refused from the composed graph, in bounded memory."""
    p = tmp_path / "bomb.yaml"
    p.write_text(BOMB)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            load_task(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value).startswith(f"{p}: line ") and "expands to more than 200000 values" in str(info.value)
    assert peak < 20 * 1024 * 1024, f"{peak} bytes to refuse a 1 kB file"


def test_a_small_use_of_aliases_is_fine(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("name: t\nsearch_space:\n  x: &r {type: float, low: 0, high: 1}\n  y: *r\n"
                 "evaluation: {command: 'true'}\n")
    assert set(load_task(p).search_space.by_name) == {"x", "y"}


def test_a_task_file_over_the_size_limit_is_refused_unparsed(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("name: t\n# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"t.yaml: the task file is larger than 1048576 bytes"):
        load_task(p)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_a_one_line_error(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"t{suffix}"
    p.write_text('{"name": "t", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError) as info:
        load_task(p)
    assert "nested more than" in str(info.value) and "\n" not in str(info.value)


def test_a_grid_over_the_widest_int_range_is_enumerated_lazily() -> None:
    """±2**53 is 2**54 values: a list of them would never fit; the grid hands out the first ones."""
    space = parse_space({"n": {"type": "int", "low": -(2 ** 53), "high": 2 ** 53},
                         "m": {"type": "int", "low": 0, "high": 2 ** 53, "step": 2}})
    tracemalloc.start()
    try:
        grid = GridSearch(space, seed=0)
        points = [s.params for s in grid.ask(4)]
        first = list(itertools.islice(space.iter_grid(resolution=5), 3))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    low = -(2 ** 53)
    assert points == [{"n": low, "m": 0}, {"n": low, "m": 2}, {"n": low, "m": 4}, {"n": low, "m": 6}]
    assert first == points[:3] and not grid.exhausted
    assert peak < 5 * 1024 * 1024
