"""A slow optimiser never holds up dispatch (issue 3, item 7)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from gridhpo.bookkeeping import Repository
from gridhpo.protocol import Broker, Event, events_queue, points_queue
from gridhpo.steering import optimisers
from gridhpo.steering.driver import OptimiserDriver
from gridhpo.steering.optimisers import Trial
from gridhpo.steering.optimisers.random import RandomSearch
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.space import Point, parse_space
from gridhpo.steering.taskfile import parse_task

SPACE = parse_space({"x": {"type": "float", "low": 0, "high": 1}})


class Slow(RandomSearch):
    """Random search whose every tell takes a while, as a GP does at a few hundred points."""

    name = "slow"
    cheap = False
    told: list[int] = []

    def _tell(self, trial: Trial) -> None:
        time.sleep(1.0)
        Slow.told.append(trial.number)

    def _ask(self, n: int) -> list[Point]:
        time.sleep(0.05)
        return super()._ask(n)


def test_take_returns_at_once_while_a_slow_tell_runs() -> None:
    d = OptimiserDriver(Slow(SPACE, seed=1), ahead=4)
    deadline = time.monotonic() + 5
    while len(d._ready) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    first = d.take(2)
    assert len(first) == 2
    d.tell(first[0].number, 0.5)
    t0 = time.monotonic()
    more = d.take(2)
    assert time.monotonic() - t0 < 0.1 and len(more) == 2
    deadline = time.monotonic() + 5
    while first[0].number not in Slow.told and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    assert first[0].number in Slow.told
    d.close()


def test_inline_driver_for_cheap_backends() -> None:
    d = OptimiserDriver(RandomSearch(SPACE, seed=1), ahead=4)
    assert not d.threaded and len(d.take(3)) == 3


def test_steering_rounds_stay_short_with_a_slow_backend(tmp_path: Path) -> None:
    optimisers.REGISTRY["slow"] = f"{__name__}:Slow"
    try:
        repo = Repository(f"sqlite:///{tmp_path / 'b.db'}")
        broker = Broker(f"filesystem://{tmp_path / 'q'}")
        spec = parse_task({"name": "s", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
                           "optimiser": {"backend": "slow"}, "budget": {"max_points": 50, "parallel": 2,
                                                                        "min_queued": 4},
                           "evaluation": {"command": "true"}})
        tid, _ = submit(repo, spec)
        s = Steering(repo, broker)
        # each new point is asked after the results before it are told (1 s each here): past
        # the first 6, about one point a second, while every round stays short
        deadline = time.monotonic() + 30
        handed: list[dict[str, object]] = []
        while len(handed) < 12 and time.monotonic() < deadline:
            t0 = time.monotonic()
            s.step()
            assert time.monotonic() - t0 < 0.9, "a round waited for a tell of the optimiser"
            token = repo.task(tid).token
            while (d := broker.get(points_queue(tid, token))) is not None:
                handed.append(d.body)
                d.ack()
                ev = Event(type="finished", task_id=tid, point_id=d.body["point_id"], attempt=1, pilot_id="p",
                           data={"value": 1.0}, auth=token or "")
                broker.publish(events_queue(tid), ev.to_json())
        assert len(handed) >= 12  # dispatch went on while tells of 1 s each were queued
        broker.close()
    finally:
        del optimisers.REGISTRY["slow"]


class Blocked(RandomSearch):
    """An ask that blocks until the test lets it go, as a GP fit of a minute does."""

    name = "blocked"
    cheap = False
    asking = threading.Event()
    release = threading.Event()

    def _ask(self, n: int) -> list[Point]:
        Blocked.asking.set()
        Blocked.release.wait()  # only the test lets it go
        return super()._ask(n)


def closes(close: Any) -> bool:
    """Whether ``close()`` returns while the blocked ask still waits (which only the test ends)."""
    done = threading.Event()

    def run() -> None:
        close()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(20) and not Blocked.release.is_set()


def test_close_returns_while_the_optimiser_is_busy() -> None:
    """Closing a task (or Ctrl-C on `gridhpo run`) does not wait for the ask in progress."""
    Blocked.asking.clear()
    Blocked.release.clear()
    d = OptimiserDriver(Blocked(SPACE, seed=1), ahead=2)
    assert Blocked.asking.wait(30), "the worker never started its ask"
    try:
        returned = closes(d.close)
        assert returned and not d.stopped  # close returned while the ask is still blocked
    finally:
        Blocked.release.set()
    deadline = time.monotonic() + 30
    while not d.stopped:
        assert time.monotonic() < deadline, "the worker did not end after its ask"
        time.sleep(0.01)
    assert not d._ready  # nothing was added after the close


def test_steering_close_returns_while_an_optimiser_is_busy(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(optimisers.REGISTRY, "blocked", f"{__name__}:Blocked")
    Blocked.asking.clear()
    Blocked.release.clear()
    repo = Repository(f"sqlite:///{tmp_path / 'b.db'}")
    broker = Broker(f"filesystem://{tmp_path / 'q'}")
    spec = parse_task({"name": "b", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
                       "optimiser": {"backend": "blocked", "algorithm": "random"},
                       "evaluation": {"command": "true"}})
    submit(repo, spec)
    s = Steering(repo, broker)
    try:
        s.refresh_tasks(force=True)
        assert Blocked.asking.wait(30)
        driver = next(iter(s.tasks.values())).driver
        assert closes(s.close) and not driver.stopped
    finally:
        Blocked.release.set()
        broker.close()
