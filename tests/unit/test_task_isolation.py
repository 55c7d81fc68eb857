"""One task the steering cannot serve (a missing optimiser library, a stored spec that does not
load, an optimiser that raises, a point the bookkeeping cannot store) fails alone, with its
reason; the steering goes on serving the task beside it."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gridhpo.bookkeeping import Repository
from gridhpo.cli import main
from gridhpo.protocol import Broker, Event, events_queue, points_queue
from gridhpo.steering import optimisers
from gridhpo.steering.optimisers import Optimiser, Trial
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.space import Point
from gridhpo.steering.taskfile import TaskSpec, parse_task


def task(name: str, backend: str = "random", **space: Any) -> TaskSpec:
    return parse_task({
        "name": name,
        "search_space": space or {"x": {"type": "float", "low": 0, "high": 1}},
        "optimiser": {"backend": backend, "seed": 1},
        "budget": {"max_points": 3, "parallel": 1},
        "evaluation": {"command": "true"},
    })


@pytest.fixture
def env(servers: tuple[str, str]) -> Iterator[tuple[Repository, Broker]]:
    db, broker_url = servers
    repo = Repository(db)
    broker = Broker(broker_url)
    yield repo, broker
    broker.close()


def serve_until(steering: Steering, broker: Broker, repo: Repository, done: Callable[[], bool]) -> None:
    """Step the steering, playing a pilot that finishes every point of every task, until ``done``."""
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, "timed out serving the tasks"
        steering.step()
        for t in list(steering.tasks.values()):
            while (d := broker.get(points_queue(t.id, t.row.token))) is not None:
                m = d.body
                d.ack()
                for etype, data in (("started", {}), ("finished", {"value": 1.0})):
                    e = Event(type=etype, task_id=t.id, point_id=m["point_id"], attempt=m["attempt"],
                              pilot_id="pilot-a", data=data, auth=t.row.token or "")
                    broker.publish_many([(events_queue(t.id), e.to_json())])


def state(repo: Repository, tid: int) -> tuple[str, str | None]:
    row = repo.find_task(tid)
    assert row is not None
    return row.state, row.message


@pytest.mark.parametrize("backend", ["hyperopt", "skopt", "nevergrad"])
def test_submit_without_the_optimiser_library_names_the_extra(home: Path, tmp_path: Path, backend: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump(task("t", backend).to_dict()))
    monkeypatch.setitem(sys.modules, optimisers.get(backend).libraries[0], None)  # as if not installed
    r = CliRunner().invoke(main, ["submit", str(f)])
    assert r.exit_code == 1 and r.stdout == ""
    assert "pip install 'gridhpo[optimisers]'" in r.stderr and backend in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_task_whose_library_is_missing_fails_and_the_other_is_served(
        env: tuple[Repository, Broker], monkeypatch: pytest.MonkeyPatch) -> None:
    repo, broker = env
    broken, _ = submit(repo, task("needs-hyperopt", "hyperopt"))  # submitted where hyperopt was installed
    good, _ = submit(repo, task("good"))
    monkeypatch.setitem(sys.modules, "hyperopt", None)  # the steering runs where it is not
    s = Steering(repo, broker)
    serve_until(s, broker, repo, lambda: state(repo, good)[0] != "active")
    assert state(repo, good) == ("finished", None)
    st, message = state(repo, broken)
    assert st == "failed" and message is not None and "pip install 'gridhpo[optimisers]'" in message


class Exploding(Optimiser):
    """A backend that raises a library's own error on its second ask or on its first tell."""

    name = "exploding"
    cheap = True
    where = "ask"

    def _ask(self, n: int) -> list[Point]:
        if self.where == "ask" and self.next_number >= 1:
            raise ZeroDivisionError("the library divided by zero")
        return [{"x": 0.5 + self.next_number / 100}]

    def _tell(self, trial: Trial) -> None:
        if self.where == "tell":
            raise KeyError("the library lost a key")


class ExplodingOnTell(Exploding):
    where = "tell"


class Unstorable(Optimiser):
    """A backend whose second point holds a value no bookkeeping can store."""

    name = "unstorable"
    algorithms = ("NaN point", "huge int point")
    cheap = True

    def _ask(self, n: int) -> list[Point]:
        if self.next_number == 0:
            return [{"x": 0.5}]
        return [{"x": float("nan") if self.algorithm == "NaN point" else 10 ** 30}]

    def _tell(self, trial: Trial) -> None:
        pass


@pytest.mark.parametrize("spec_change", ["unknown backend", "ask raises", "tell raises", "not a spec",
                                         "overflowing range", "NaN point", "huge int point"])
def test_whatever_a_stored_task_holds_it_fails_alone(env: tuple[Repository, Broker], spec_change: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo, broker = env
    monkeypatch.setitem(optimisers.REGISTRY, "exploding", f"{__name__}:Exploding")
    monkeypatch.setitem(optimisers.REGISTRY, "exploding-tell", f"{__name__}:ExplodingOnTell")
    monkeypatch.setitem(optimisers.REGISTRY, "unstorable", f"{__name__}:Unstorable")
    data = task("bad").to_dict()
    if spec_change == "unknown backend":
        data["optimiser"]["backend"] = "no-such-backend"
    elif spec_change == "ask raises":
        data["optimiser"]["backend"] = "exploding"
    elif spec_change == "tell raises":
        data["optimiser"]["backend"] = "exploding-tell"
    elif spec_change == "overflowing range":  # the grid that yielded NaN
        data["optimiser"]["backend"] = "grid"
        data["search_space"] = {"x": {"type": "float", "low": -1.0e308, "high": 1.0e308}}
    elif spec_change in ("NaN point", "huge int point"):
        data["optimiser"]["backend"] = "unstorable"
        data["optimiser"]["algorithm"] = spec_change
    else:
        data["search_space"] = ["not", "a", "mapping"]
    bad = repo.create_task("bad", data)  # written straight into the bookkeeping, as an old version might
    good, _ = submit(repo, task("good"))
    s = Steering(repo, broker)
    serve_until(s, broker, repo, lambda: state(repo, good)[0] != "active" and state(repo, bad)[0] != "active")
    assert state(repo, good) == ("finished", None)
    st, message = state(repo, bad)
    assert st == "failed" and message, message
    expected = {"unknown backend": "no-such-backend", "ask raises": "ZeroDivisionError",
                "tell raises": "KeyError", "not a spec": "search_space", "overflowing range": "too wide",
                "NaN point": "cannot store: parameter 'x' is nan",
                "huge int point": "cannot store: parameter 'x' is an integer beyond 64 bits"}[spec_change]
    assert expected in message
