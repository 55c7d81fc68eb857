"""A model-based optimiser behind the threaded driver proposes each point knowing every result
that arrived before the steering asked for it (issue 16: the driver's buffer of spare
suggestions made hyperopt's anneal propose points blind to up to 23 results at parallelism 8,
and reach a median regret of 2.07 on a 10-d space, 0.25 called directly)."""
from __future__ import annotations

import time

from gridhpo.steering.driver import OptimiserDriver
from gridhpo.steering.optimisers import Suggestion
from gridhpo.steering.optimisers.random import RandomSearch
from gridhpo.steering.space import Point, parse_space

SPACE = parse_space({"x": {"type": "float", "low": 0, "high": 1}})
PARALLEL = 4


class Recording(RandomSearch):
    """Random search run in the worker thread, as a model-based backend is; it notes, at every
    ask, which points it already knows the results of and how many are in flight."""

    name = "recording"
    cheap = False

    def __init__(self) -> None:
        super().__init__(SPACE, seed=1)
        self.known_at_ask: list[set[int]] = []
        self.pending_at_ask: list[int] = []

    def _ask(self, n: int) -> list[Point]:
        self.known_at_ask.append({t.number for t in self.trials.values() if t.state != "pending"})
        self.pending_at_ask.append(len(self.pending))
        return super()._ask(n)


def take_over_rounds(d: OptimiserDriver, n: int) -> list[Suggestion]:
    """What a steering short of ``n`` points gets from ``take`` over its next rounds (it never
    waits inside one)."""
    got: list[Suggestion] = []
    deadline = time.monotonic() + 30
    while len(got) < n:
        assert time.monotonic() < deadline, "the driver never produced the suggestions the steering was short of"
        more = d.take(n - len(got))
        got += more
        if not more:
            time.sleep(0.01)
    return got


def test_each_point_is_asked_after_the_results_that_came_before_it() -> None:
    """The steering keeps PARALLEL points in flight and replaces each as its result arrives: the
    optimiser sees at most the other PARALLEL - 1 as pending, and knows every earlier result."""
    opt = Recording()
    d = OptimiserDriver(opt, ahead=PARALLEL)
    try:
        in_flight = take_over_rounds(d, PARALLEL)
        for _ in range(20):
            done = in_flight.pop(0)
            d.tell(done.number, 0.5)
            in_flight += take_over_rounds(d, 1)
        assert not d.error
        assert len(opt.known_at_ask) == PARALLEL + 20  # nothing asked that the steering did not want
        assert opt.pending_at_ask[PARALLEL:] == [PARALLEL - 1] * 20, opt.pending_at_ask
        # each replacement knew the result of the point it replaced, and every one before it
        for i, known in enumerate(opt.known_at_ask[PARALLEL:]):
            assert known == set(range(i + 1)), (i, sorted(known))
    finally:
        d.close()


def test_results_told_together_all_go_in_before_the_next_ask() -> None:
    opt = Recording()
    d = OptimiserDriver(opt, ahead=PARALLEL)
    try:
        first = take_over_rounds(d, PARALLEL)
        for s in first[:3]:
            d.tell(s.number, float(s.number))
        take_over_rounds(d, 3)
        assert not d.error
        assert all(known == {0, 1, 2} for known in opt.known_at_ask[PARALLEL:]), opt.known_at_ask
        assert len(opt.known_at_ask) == PARALLEL + 3
    finally:
        d.close()
