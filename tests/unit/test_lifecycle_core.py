"""The lifecycle core alone (steering/lifecycle), without servers, queue or database: a
hypothesis state machine plays the steering's shell (ids given, effects recorded as the
bookkeeping would keep them) and any mix of pilots, clock and optimiser, and checks after
every step what the steering promises: a point ends once and never changes after, at most
the depth is in flight, a report of an attempt that is not its point's current one never
changes the point, and any event applied a second time yields no effect."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gridhpo.bookkeeping.records import (
    AttemptUpdate,
    LateResult,
    MetricLine,
    NewAttempt,
    NewPoint,
    PilotSeen,
    PointUpdate,
)
from gridhpo.protocol import Event
from gridhpo.steering import schedulers
from gridhpo.steering.lifecycle import PointState, TaskLifecycle
from gridhpo.steering.lifecycle.effects import Effect, LookUpLate, SendControl, SendPoint, Tell
from gridhpo.steering.lifecycle.events import (
    AttemptsCreated,
    LateFound,
    LifecycleEvent,
    PointsCreated,
    Received,
    ResendCheck,
    ReviveCheck,
    Revoked,
    Suggested,
    TaskClosed,
    TimeoutCheck,
    TokenReplaced,
)
from gridhpo.steering.optimisers import Suggestion
from gridhpo.steering.taskfile import TaskSpec, parse_task

TASK = 7
ENDED = ("finished", "failed", "stopped", "cancelled")


def task_spec() -> TaskSpec:
    return parse_task({
        "name": "core", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
        "optimiser": {"backend": "random", "seed": 1},
        "budget": {"max_points": 40, "parallel": 3, "max_attempts": 3, "min_queued": 1},
        "evaluation": {"command": "true", "heartbeat": 1, "lost_after": 5},
        "early_stopping": {"scheduler": "asha", "resource": "epoch", "min_resource": 1, "max_resource": 9,
                           "revive": True},
    })


@dataclass
class Books:
    """The bookkeeping as the shell keeps it: point and attempt rows, what was told."""

    points: dict[int, tuple[str, int]] = field(default_factory=dict)  # id: (state, attempt)
    ended: set[int] = field(default_factory=set)
    attempts: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)  # (point, n): (id, state)
    told: set[int] = field(default_factory=set)
    next_id: int = 1


def sound_data(etype: str, draw: Any) -> dict[str, Any]:
    if etype == "metric":
        epoch = draw(st.integers(0, 9))
        return {"seq": draw(st.integers(0, 50)), "step": epoch,
                "values": {"loss": draw(st.floats(0, 10)), "epoch": epoch}}
    if etype == "finished":
        return {"value": draw(st.floats(-10, 10)), "message": ""}
    if etype == "failed":
        return {"reason": "boom", "stderr": "x"}
    if etype == "interrupted":
        return draw(st.sampled_from([{"reason": "walltime", "cause": "walltime"}, {"decision": "stop"},
                                     {"decision": "pause"}, {"reason": "signal", "cause": "signal"}]))
    if etype == "checkpoint":
        return {"key": "k", "size": 1, "sha256": "0" * 64, "sequence": draw(st.integers(0, 5))}
    return {}


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        spec = task_spec()
        self.core = TaskLifecycle(TASK, "core", spec, "queue-1", schedulers.create(spec))
        self.books = Books()
        self.now = 1000.0
        self.depth = 4
        self.number = 0  # the optimiser's next suggestion
        self.sent: list[tuple[int, int]] = []  # (point, attempt) of every point message
        self.closed = False

    # ------------------------------------------------------------------ the shell

    def apply(self, event: LifecycleEvent) -> list[Effect]:
        before = self.core.in_flight + len(self.core.pending)
        effects = self.core.apply(event)
        # in flight grows only by suggestions within the depth and paused points revived into
        # free slots of ``parallel``; anything else only keeps or ends points
        allowed = before
        if isinstance(event, Suggested):
            allowed = max(before, event.depth)
        elif isinstance(event, ReviveCheck):
            allowed = max(before, self.core.spec.budget.parallel)
        assert self.core.in_flight + len(self.core.pending) <= allowed, f"{type(event).__name__}: over the depth"
        new_attempts = {}
        for eff in effects:
            if isinstance(eff, NewAttempt):
                key = (eff.point_id, eff.number)
                assert key not in self.books.attempts, f"attempt {key} started twice"
                new_attempts[key] = self.books.next_id
                self.books.attempts[key] = (self.books.next_id, eff.fields.state)
                self.books.next_id += 1
            elif isinstance(eff, AttemptUpdate):
                key = (eff.point_id, eff.number)
                assert key in self.books.attempts, f"attempt {key} written with no row"
                assert eff.attempt_id in (None, self.books.attempts[key][0])
                assert eff.attempt_id is not None or key in new_attempts, f"attempt {key}: its id was never given"
                self.books.attempts[key] = (self.books.attempts[key][0], eff.fields.state)
            elif isinstance(eff, PointUpdate):
                self.write_point(eff)
            elif isinstance(eff, Tell):
                assert eff.number not in self.books.told, f"point {eff.number} told twice"
                self.books.told.add(eff.number)
            elif isinstance(eff, SendPoint):
                self.sent.append((eff.message.point_id, eff.message.attempt))
        if new_attempts:
            assert self.core.apply(AttemptsCreated(new_attempts)) == []
        # every event is applied a second time (a redelivery, a retried round): no effect
        assert self.core.apply(event) == [], f"{type(event).__name__} applied twice had effects"
        return effects

    def write_point(self, upd: PointUpdate) -> None:
        assert upd.point_id not in self.books.ended, f"point {upd.point_id} changed after it ended"
        _, attempt = self.books.points[upd.point_id]
        assert upd.attempt >= attempt, f"point {upd.point_id} went back to attempt {upd.attempt}"
        self.books.points[upd.point_id] = (upd.state, upd.attempt)
        if upd.state in ENDED:
            self.books.ended.add(upd.point_id)

    # ------------------------------------------------------------------ the optimiser and the clock

    @precondition(lambda self: not self.closed)
    @rule(n=st.integers(0, 5), depth=st.integers(1, 8))
    def suggest(self, n: int, depth: int) -> None:
        self.depth = depth
        points = tuple(Suggestion(self.number + i, {"x": 0.5}) for i in range(n))
        effects = self.apply(Suggested(points, depth))
        new = [e for e in effects if isinstance(e, NewPoint)]
        self.number += len(new)  # a suggestion the core did not take is asked again
        ids = tuple(range(self.books.next_id, self.books.next_id + len(new)))
        self.books.next_id += len(new)
        for i in ids:
            self.books.points[i] = ("queued", 1)
        sends = self.apply(PointsCreated(ids, self.now))
        assert [e.message.point_id for e in sends if isinstance(e, SendPoint)] == list(ids)

    @rule(dt=st.floats(0, 4))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def timeouts(self) -> None:
        self.apply(TimeoutCheck(self.now))

    @rule(waiting=st.integers(0, 5))
    def resend(self, waiting: int) -> None:
        self.apply(ResendCheck(self.now, waiting, grace=2.0))

    @rule()
    def revive(self) -> None:
        self.apply(ReviveCheck(self.now))

    @rule(queue=st.sampled_from(["queue-1", "queue-2"]))
    def token_replaced(self, queue: str) -> None:
        self.apply(TokenReplaced(queue))

    @rule(state=st.sampled_from([None, "finished", "failed"]))
    def close(self, state: str | None) -> None:
        self.apply(TaskClosed(state, None, self.now))
        assert not self.core.open
        self.closed = True

    # ------------------------------------------------------------------ pilots

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data(), etype=st.sampled_from(["started", "heartbeat", "metric", "checkpoint", "finished",
                                                 "failed", "interrupted"]))
    def report(self, data: st.DataObject, etype: str) -> None:
        """A pilot reports on a point it was sent: mostly the current attempt, sometimes an old one."""
        point_id, attempt = data.draw(st.sampled_from(self.sent))
        op = self.core.open.get(point_id)
        if op is not None and data.draw(st.booleans()):
            attempt = op.attempt
        ev = Event(type=etype, task_id=TASK, point_id=point_id, attempt=attempt, pilot_id=f"p{attempt}",
                   data=sound_data(etype, data.draw), time=self.now)
        current = op is not None and op.attempt == attempt
        before = self.books.points.get(point_id)
        effects = self.apply(Received((ev,), self.now))
        if not current:
            # a late attempt never changes its point, nor tells, nor stops a pilot
            assert self.books.points.get(point_id) == before
            assert all(isinstance(e, (PilotSeen, LookUpLate)) for e in effects), effects
            found = {(TASK, k[0], k[1]): v for k, v in self.books.attempts.items()}
            late = self.apply(LateFound(found))
            assert all(isinstance(e, (LateResult, MetricLine)) for e in late), late
            assert self.books.points.get(point_id) == before

    @precondition(lambda self: bool(self.core.open))
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        op = data.draw(st.sampled_from(sorted(self.core.open.values(), key=lambda o: o.id)))
        self.apply(Revoked(op.id, op.attempt, op.pilot_id or "nobody", "token expired", self.now))

    # ------------------------------------------------------------------ invariants

    @invariant()
    def books_agree(self) -> None:
        open_in_books = {i for i, (s, _) in self.books.points.items() if s not in ENDED}
        assert set(self.core.open) == open_in_books
        for op in self.core.open.values():
            assert self.books.points[op.id] == (op.state, op.attempt)
        assert self.core.finished == sum(s == "finished" for s, _ in self.books.points.values())
        assert self.core.failed == sum(s == "failed" for s, _ in self.books.points.values())
        assert self.core.created == len(self.books.points)
        assert all(p.state in PointState for p in self.core.open.values())

    @invariant()
    def ends_told_once(self) -> None:
        ended_numbers = len([i for i in self.books.ended if self.books.points[i][0] != "cancelled"])
        assert len(self.books.told) <= ended_numbers


LifecycleMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None,
                                              suppress_health_check=[HealthCheck.too_slow])
TestLifecycle = LifecycleMachine.TestCase


def test_a_point_that_ends_in_a_round_with_its_heartbeat_keeps_its_end() -> None:
    """A heartbeat and the result of the same attempt in one round: the attempt ends finished
    (the heartbeat's "running" is never written after the end)."""
    spec = task_spec()
    core = TaskLifecycle(TASK, "core", spec, "q", schedulers.create(spec))
    core.apply(Suggested((Suggestion(0, {"x": 0.1}),), 4))
    core.apply(PointsCreated((1,), 0.0))
    started = Event("started", TASK, 1, 1, "p", time=1.0)
    core.apply(Received((started,), 1.0))
    core.apply(AttemptsCreated({(1, 1): 11}))
    effects = core.apply(Received((Event("heartbeat", TASK, 1, 1, "p"), Event("finished", TASK, 1, 1, "p",
                                                                                 data={"value": 2.0})), 2.0))
    attempts = [e.fields.state for e in effects if isinstance(e, AttemptUpdate)]
    assert attempts == ["finished"] and Tell(0, 2.0) in effects and not core.open


def test_the_task_end_stops_running_pilots_and_ends_every_open_point() -> None:
    spec = task_spec()
    core = TaskLifecycle(TASK, "core", spec, "q", schedulers.create(spec))
    core.apply(Suggested((Suggestion(0, {"x": 0.1}), Suggestion(1, {"x": 0.2})), 4))
    core.apply(PointsCreated((1, 2), 0.0))
    core.apply(Received((Event("started", TASK, 1, 1, "pilot-a"),), 1.0))
    core.apply(AttemptsCreated({(1, 1): 11}))
    effects = core.apply(TaskClosed("failed", "too many failures", 5.0))
    stops = [e for e in effects if isinstance(e, SendControl)]
    assert [(s.pilot_id, s.message.action, s.message.point_id) for s in stops] == [("pilot-a", "stop", 1)]
    assert sorted((e.point_id, e.state) for e in effects if isinstance(e, PointUpdate)) == [
        (1, "cancelled"), (2, "cancelled")]
    assert core.apply(TaskClosed("failed", "too many failures", 6.0)) == []


def running_core(pilot: str = "pilot-a", at: float = 0.0) -> TaskLifecycle:
    """A core with one point, started by ``pilot`` when the steering's clock read ``at``."""
    spec = task_spec()
    core = TaskLifecycle(TASK, "core", spec, "q", schedulers.create(spec))
    core.apply(Suggested((Suggestion(0, {"x": 0.1}),), 4))
    core.apply(PointsCreated((1,), at))
    core.apply(Received((Event("started", TASK, 1, 1, pilot),), at))
    core.apply(AttemptsCreated({(1, 1): 11}))
    return core


def test_an_attempt_is_lost_by_the_steerings_clock_after_lost_after() -> None:
    core = running_core(at=100.0)
    assert core.apply(TimeoutCheck(105.0)) == []  # lost_after is 5 s: not yet
    effects = core.apply(TimeoutCheck(105.5))
    assert [(e.number, e.fields.state) for e in effects if isinstance(e, AttemptUpdate)] == [(1, "lost")]
    assert [(e.message.point_id, e.message.attempt) for e in effects if isinstance(e, SendPoint)] == [(1, 2)]
    assert core.open[1].state == "queued" and core.open[1].dispatched_at == 105.5


def test_a_queued_points_lost_message_is_sent_again_after_the_grace_only() -> None:
    spec = task_spec()
    core = TaskLifecycle(TASK, "core", spec, "q", schedulers.create(spec))
    core.apply(Suggested((Suggestion(0, {"x": 0.1}), Suggestion(1, {"x": 0.2})), 4))
    core.apply(PointsCreated((1, 2), 100.0))
    assert not core.has_stale(101.0, grace=2.0) and core.has_stale(102.5, grace=2.0)
    # one of the two messages is still in the queue: the older one is sent again
    effects = core.apply(ResendCheck(102.5, waiting=1, grace=2.0))
    assert [e.message.point_id for e in effects if isinstance(e, SendPoint)] == [1]
    assert core.apply(ResendCheck(102.5, waiting=1, grace=2.0)) == []


def test_a_report_of_a_paused_points_ended_attempt_never_requeues_it() -> None:
    """The pilot paused the attempt as decided; a later report of that attempt (an interrupt
    by walltime) is a late one: the point stays paused and holds no slot."""
    core = running_core()
    core.apply(Received((Event("interrupted", TASK, 1, 1, "pilot-a", data={"decision": "pause"}),), 1.0))
    assert core.open[1].state == "paused" and core.in_flight == 0
    late = Event("interrupted", TASK, 1, 1, "pilot-a", data={"reason": "walltime", "cause": "walltime"})
    effects = core.apply(Received((late,), 2.0))
    assert all(isinstance(e, PilotSeen) for e in effects) and core.open[1].state == "paused"
    assert core.in_flight == 0
