"""The steering's event handling, driven by hand-made events on the embedded defaults."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.protocol import PROTOCOL_VERSION, Broker, Event, events_queue, parse_point, points_queue
from gridhpo.steering import service
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import parse_task


def spec(**budget: Any) -> Any:
    return parse_task({
        "name": "t",
        "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
        "optimiser": {"backend": "random", "seed": 1},
        "budget": {"max_points": 6, "parallel": 2, "max_attempts": 2, **budget},
        "evaluation": {"command": "true", "heartbeat": 1, "lost_after": 2},
    })


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Repository, Broker]]:
    repo = Repository(f"sqlite:///{tmp_path / 'b.db'}")
    broker = Broker(f"filesystem://{tmp_path / 'q'}")
    yield repo, broker
    broker.close()


@pytest.fixture(autouse=True)
def tokens(env: tuple[Repository, Broker]) -> Iterator[None]:
    """Each task's token as `gridhpo token` prints it, for the pilots these tests play."""
    repo, _ = env
    TOKENS.clear()
    original = repo.create_task

    def create_task(name: str, spec: dict[str, Any], token: str | None = None) -> int:
        tid = original(name, spec, token)
        TOKENS[tid] = token
        return tid

    repo.create_task = create_task  # type: ignore[method-assign]
    yield


TOKENS: dict[int, str | None] = {}


def take(broker: Broker, task_id: int) -> list[dict[str, Any]]:
    """The point messages of a task, as its pilots (holding its token) get them."""
    return take_with(broker, points_queue(task_id, TOKENS.get(task_id)))


def ev(etype: str, p: dict[str, Any], **data: Any) -> Event:
    return Event(type=etype, task_id=p["task_id"], point_id=p["point_id"], attempt=p["attempt"],
                 pilot_id="pilot-a", data=data, auth=TOKENS.get(p["task_id"]) or "")


def feed(steering: Steering, broker: Broker, events: list[Event]) -> None:
    broker.publish_many([(events_queue(e.task_id), e.to_json()) for e in events])
    for _ in range(20):
        steering.step()
        if all(broker.size(events_queue(t)) == 0 for t in {e.task_id for e in events}):
            break


def test_keeps_parallel_points_in_flight_and_records_results(env: tuple[Repository, Broker]) -> None:
    repo, broker = env
    tid, _ = submit(repo, spec())
    s = Steering(repo, broker)
    s.step()
    msgs = take(broker, tid)
    assert len(msgs) == 2 and {parse_point(m).attempt for m in msgs} == {1}
    feed(s, broker, [ev("started", msgs[0]), ev("metric", msgs[0], seq=0, step=1, values={"loss": 3.0}),
                     ev("finished", msgs[0], value=0.25)])
    counts = repo.counts(tid)
    assert counts["finished"] == 1 and counts.get("queued", 0) + counts.get("running", 0) == 2
    [p0] = [p for p in repo.points(tid) if p.state == "finished"]
    assert p0.value == 0.25
    [a] = repo.attempts(point_ids=[p0.id])
    assert a.state == "finished" and a.pilot_id == "pilot-a" and a.value == 0.25
    assert [m.values["loss"] for m in repo.metrics(tid)] == [3.0]


def test_applying_events_twice_changes_nothing(env: tuple[Repository, Broker]) -> None:
    repo, broker = env
    tid, _ = submit(repo, spec())
    s = Steering(repo, broker)
    s.step()
    m = take(broker, tid)[0]
    events = [ev("started", m), ev("metric", m, seq=0, step=1, values={"loss": 1.0}), ev("finished", m, value=1.0)]
    feed(s, broker, events)
    before = (repo.counts(tid), len(repo.attempts(task_id=tid)), len(repo.metrics(tid)), s.tasks[tid].finished)
    feed(s, broker, events)  # redelivered, same event ids
    feed(s, broker, [ev("finished", m, value=99.0)])  # a second pilot ran the same attempt
    after = (repo.counts(tid), len(repo.attempts(task_id=tid)), len(repo.metrics(tid)), s.tasks[tid].finished)
    assert before == after
    assert [p.value for p in repo.points(tid, ["finished"])] == [1.0]


def test_interrupted_points_come_back_until_max_attempts(env: tuple[Repository, Broker]) -> None:
    repo, broker = env
    tid, _ = submit(repo, spec(parallel=1))
    s = Steering(repo, broker)
    s.step()
    [m] = take(broker, tid)
    feed(s, broker, [ev("started", m), ev("interrupted", m, reason="pilot walltime reached", cause="walltime")])
    [m2] = take(broker, tid)
    assert m2["point_id"] == m["point_id"] and m2["attempt"] == 2
    assert repo.points(tid)[0].state == "queued"
    feed(s, broker, [ev("started", m2), ev("interrupted", m2, reason="pilot received SIGTERM", cause="signal")])
    p = repo.points(tid)[0]
    assert p.state == "failed" and "gave up after 2 attempts" in p.message
    assert [(a.number, a.state, a.end_reason) for a in repo.attempts(point_ids=[p.id])] == [
        (1, "interrupted", "walltime"), (2, "interrupted", "signal")]


def test_a_silent_attempt_is_lost_and_its_late_result_never_overwrites(env: tuple[Repository, Broker],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repo, broker = env
    clock = SteeringClock(monkeypatch)
    tid, _ = submit(repo, spec(parallel=1))
    s = Steering(repo, broker, check_interval=0.1)
    s.step()
    [m] = take(broker, tid)
    feed(s, broker, [ev("started", m)])
    clock.now += 2.5  # lost_after is 2 s
    s.check_timeouts()
    [m2] = take(broker, tid)
    assert m2["attempt"] == 2
    feed(s, broker, [ev("started", m2), ev("finished", m2, value=5.0)])
    feed(s, broker, [ev("finished", m, value=-1.0)])  # the lost pilot was alive after all
    p = repo.points(tid)[0]
    assert p.state == "finished" and p.value == 5.0
    a1, a2 = repo.attempts(point_ids=[p.id])
    assert a1.state == "lost" and a1.value == -1.0 and "late finished" in a1.message
    assert a2.state == "finished" and a2.value == 5.0


def test_a_point_message_lost_in_transit_is_sent_again(env: tuple[Repository, Broker],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repo, broker = env
    clock = SteeringClock(monkeypatch)
    tid, _ = submit(repo, spec(parallel=2))
    s = Steering(repo, broker, requeue_grace=0.5, check_interval=0.1)
    s.step()
    lost = broker.get(points_queue(tid, TOKENS[tid]))  # a pilot took it and died before reporting
    assert lost is not None
    lost.ack()
    clock.now += 0.7
    s.check_timeouts()
    again = take(broker, tid)
    assert len(again) == 2  # the one still waiting, and the lost one sent again
    assert lost.body["point_id"] in [m["point_id"] for m in again]


def test_task_ends_at_max_points_and_at_max_failures(env: tuple[Repository, Broker]) -> None:
    repo, broker = env
    tid, _ = submit(repo, spec(max_points=3, parallel=3))
    s = Steering(repo, broker)
    s.step()
    msgs = take(broker, tid)
    feed(s, broker, [e for m in msgs for e in (ev("started", m), ev("finished", m, value=1.0))])
    assert repo.task(tid).state == "finished" and tid not in s.tasks

    t2, _ = submit(repo, spec(max_points=10, parallel=3, max_failures=2), name="t2")
    s.refresh_tasks(force=True)
    s.step()
    msgs = take(broker, t2)
    feed(s, broker, [ev("failed", msgs[0], reason="boom"), ev("failed", msgs[1], reason="boom")])
    row = repo.task(t2)
    assert row.state == "failed" and "2 points failed" in (row.message or "")
    assert repo.counts(t2).get("cancelled") == 1


def test_a_cancelled_task_stops_its_running_points_and_reads_no_more(env: tuple[Repository, Broker]) -> None:
    from gridhpo.protocol import control_queue, parse_control

    repo, broker = env
    tid, _ = submit(repo, spec(max_points=10, parallel=2))
    s = Steering(repo, broker)
    s.step()
    running, _ = take(broker, tid)
    feed(s, broker, [ev("started", running)])
    repo.set_task_state(tid, "cancelled", "by the user")
    s.refresh_tasks(force=True)
    d = broker.get(control_queue(tid, "pilot-a"))  # the pilot running a point is told to stop
    assert d is not None
    c = parse_control(d.body)
    assert (c.point_id, c.attempt, c.action) == (running["point_id"], 1, "stop") and "task ended" in c.reason
    assert {p.state for p in repo.points(tid)} == {"cancelled"}
    # nothing left to hand out: only the marker that makes pilots exit
    left = [(m["kind"], m["state"], m["reason"]) for m in take(broker, tid)]
    assert left == [("task-end", "cancelled", "by the user")]
    assert broker.size(events_queue(tid)) == 0


def test_a_restarted_steering_continues_without_duplicating_points(env: tuple[Repository, Broker]) -> None:
    repo, broker = env
    tid, _ = submit(repo, spec(max_points=6, parallel=2))
    s1 = Steering(repo, broker)
    s1.step()
    first = take(broker, tid)
    feed(s1, broker, [ev("started", first[0]), ev("finished", first[0], value=2.0)])
    del s1  # killed: only the bookkeeping and the queue remain
    s2 = Steering(repo, broker)
    s2.refresh_tasks(force=True)
    state = s2.tasks[tid]
    assert state.created == 3 and state.finished == 1 and len(state.open) == 2
    second = take(broker, tid)
    # point 1 was taken by the test before the restart; point 2 still waits: nothing new
    assert [m["point_id"] for m in second] == [max(state.open)]
    feed(s2, broker, [ev("started", second[0]), ev("finished", second[0], value=3.0)])
    numbers = [p.number for p in repo.points(tid)]
    assert numbers == [0, 1, 2, 3]
    # the point asked after the restart is the one a steering that never stopped would ask
    from gridhpo.steering import optimisers

    expected = [s.params for s in optimisers.create(spec(max_points=6, parallel=2)).ask(4)]
    assert [p.params for p in repo.points(tid)] == expected


def test_malformed_and_oversized_events_go_to_the_dead_letter_queue(env: tuple[Repository, Broker]) -> None:
    from gridhpo.protocol.messages import DEAD_LETTER_QUEUE

    repo, broker = env
    tid, _ = submit(repo, spec(parallel=1))
    s = Steering(repo, broker)
    s.step()
    [m] = take(broker, tid)
    good = ev("finished", m, value=1.0).to_json()
    huge = ev("metric", m, seq=0, step=1, values={"blob": "x" * (1 << 20)}).to_json()
    broker.publish_many([(events_queue(tid), {"kind": "event", "v": PROTOCOL_VERSION, "type": "exploded"}),
                         (events_queue(tid), huge), (events_queue(tid), good)])
    for _ in range(10):
        s.step()
    reasons = []
    while (d := broker.get(DEAD_LETTER_QUEUE)) is not None:
        reasons.append(d.body["reason"])
        d.ack()
    assert len(reasons) == 2
    assert any("event type 'exploded' is not one of" in r for r in reasons)
    assert any("over the limit" in r for r in reasons)
    assert repo.points(tid)[0].state == "finished"  # the good event after them was applied


class SteeringClock:
    """The steering's clock (``time.time`` in steering.service), moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        monkeypatch.setattr(service, "time", SimpleNamespace(time=lambda: self.now, monotonic=time.monotonic))


def test_status_shows_stale_running_points_before_they_are_lost(env: tuple[Repository, Broker],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from gridhpo.steering.reports import status_rows

    repo, broker = env
    clock = SteeringClock(monkeypatch)
    tid, _ = submit(repo, spec(parallel=2))  # heartbeat 1 s, lost after 2 s
    # The loss check must not run in this test (the status is read before the steering checks);
    # with the default 2 s of real time between checks, a slow machine ran it and lost b.
    s = Steering(repo, broker, check_interval=3600.0)
    s.step()
    a, b = take(broker, tid)
    feed(s, broker, [ev("started", a), ev("started", b)])
    started = clock.now
    header, rows = status_rows(repo, [repo.task(tid)], now=started + 1.0)
    assert rows[0][header.index("stale")] == 0 and rows[0][header.index("running")] == 2
    clock.now = started + 5.0
    feed(s, broker, [ev("heartbeat", a)])
    header, rows = status_rows(repo, [repo.task(tid)], now=started + 5.5)
    assert rows[0][header.index("stale")] == 1  # b has been silent for more than two heartbeats


def test_liveness_is_judged_by_the_steerings_clock_not_the_pilots(env: tuple[Repository, Broker],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Pilot ``behind`` runs 60 s late and is alive; pilot ``ahead`` runs an hour early and
    goes silent. Its point is lost after lost_after (2 s), the other one is not."""
    repo, broker = env
    clock = SteeringClock(monkeypatch)
    tid, _ = submit(repo, spec(parallel=2))
    s = Steering(repo, broker, check_interval=0.0)
    s.step()
    behind, ahead = take(broker, tid)

    def at(skew: float, etype: str, p: dict[str, Any]) -> Event:
        return Event(**{**ev(etype, p).__dict__, "pilot_id": f"pilot{skew:+g}", "time": clock.now + skew})

    feed(s, broker, [at(-60, "started", behind), at(3600, "started", ahead)])
    for _ in range(3):
        clock.now += 1.5
        feed(s, broker, [at(-60, "heartbeat", behind)])
    by_id = {p.id: p for p in repo.points(tid)}
    assert (by_id[behind["point_id"]].state, by_id[behind["point_id"]].attempt) == ("running", 1)
    assert (by_id[ahead["point_id"]].state, by_id[ahead["point_id"]].attempt) == ("queued", 2)
    lost = [a for a in repo.attempts(point_ids=[ahead["point_id"]]) if a.number == 1]
    assert [(a.state, a.end_reason) for a in lost] == [("lost", "lost")]
    pilots = {p.id: p for p in repo.pilots(tid)}
    assert pilots["pilot-60"].last_seen == clock.now  # when it was heard of, by the steering's clock


def test_only_the_tasks_token_gets_its_points_and_reports_on_them(env: tuple[Repository, Broker]) -> None:
    import time as _time

    from gridhpo.protocol.messages import DEAD_LETTER_QUEUE
    from gridhpo.tokens import new_token

    repo, broker = env
    tid, _ = submit(repo, spec(parallel=1))
    token = repo.task(tid).token
    assert token
    s = Steering(repo, broker)
    s.step()
    assert broker.get(points_queue(tid)) is None  # without the token a pilot finds nothing
    [m] = take_with(broker, points_queue(tid, token))
    forged = Event(**{**ev("finished", m, value=-100.0).__dict__, "auth": "guess"})
    feed(s, broker, [forged])
    assert repo.points(tid)[0].state == "queued"
    reasons = [d.body["reason"] for d in iter(lambda: broker.get(DEAD_LETTER_QUEUE), None)]
    assert any("wrong or replaced token" in r for r in reasons)

    # revoked: a new token; the old one's events are refused, the queued point moves
    repo.set_token(tid, new_token(), None)
    s.refresh_tasks(force=True)
    stale = Event(**{**ev("finished", m, value=1.0).__dict__, "auth": token})
    feed(s, broker, [stale])
    assert repo.points(tid)[0].state == "queued"
    new = repo.task(tid).token
    assert new and new != token
    [again] = take_with(broker, points_queue(tid, new))
    assert again["point_id"] == m["point_id"]

    # expired
    repo.set_token(tid, new, _time.time() - 1)
    s.refresh_tasks(force=True)
    feed(s, broker, [Event(**{**ev("finished", again, value=1.0).__dict__, "auth": new})])
    assert repo.points(tid)[0].state == "queued"
    reasons = [d.body["reason"] for d in iter(lambda: broker.get(DEAD_LETTER_QUEUE), None)]
    assert any("token expired" in r for r in reasons)
    repo.set_token(tid, new, None)
    s.refresh_tasks(force=True)
    feed(s, broker, [Event(**{**ev("finished", again, value=2.0).__dict__, "auth": new})])
    assert repo.points(tid)[0].state == "finished" and repo.points(tid)[0].value == 2.0


def take_with(broker: Broker, queue: str) -> list[dict[str, Any]]:
    out = []
    while (d := broker.get(queue)) is not None:
        out.append(d.body)
        d.ack()
    return out


def test_a_flood_of_one_tasks_events_does_not_delay_another_task(env: tuple[Repository, Broker]) -> None:
    """One steering, a large task whose pilots sent far more than a round takes, and a small
    one with a single result waiting: the small task's result is applied in the first round."""
    repo, broker = env
    big, _ = submit(repo, spec(parallel=1), name="big")
    small, _ = submit(repo, spec(parallel=1), name="small")
    s = Steering(repo, broker, batch=50)
    s.step()
    [mb], [ms] = take(broker, big), take(broker, small)
    flood = [ev("started", mb)] + [ev("metric", mb, seq=i, step=i, values={"loss": 1.0}) for i in range(400)]
    broker.publish_many([(events_queue(big), e.to_json()) for e in flood])
    broker.publish(events_queue(small), ev("finished", ms, value=0.5).to_json())
    assert s.step() <= 50
    assert [p.state for p in repo.points(small) if p.id == ms["point_id"]] == ["finished"]
    assert len(repo.metrics(big)) < 50  # the rest of the flood waits for the next rounds
    for _ in range(20):
        s.step()
    assert len(repo.metrics(big)) == 400  # and nothing of it is lost


def test_a_task_whose_pilots_outpace_the_rounds_gets_more_points_in_flight() -> None:
    from gridhpo.steering.depth import MAX_FACTOR, WINDOW, QueueDepth

    d = QueueDepth(base=4)
    d.update(0.0, 0, 0.1)
    assert d.target == 4
    d.update(WINDOW, 50, 0.1)  # 50 points/s ended and rounds of 0.1 s: twice the 10 of two rounds
    assert d.target == 4 + 20
    d.update(2 * WINDOW, 10**6, 0.1)
    assert d.target == 4 * MAX_FACTOR  # never more than this
    # the steering is the bottleneck (more waiting than a round takes): more depth would only
    # add to the backlog
    d.update(2.5 * WINDOW, 10**6 + 300, 0.1, backlogged=True)
    d.update(3 * WINDOW, 10**6 + 400, 0.1)
    assert d.target == 4 + 4 * (MAX_FACTOR - 1) // 2
    d.update(4 * WINDOW, 10**6 + 400, 0.1)  # pilots idle: back to the budget's depth
    assert d.target == 4


def test_the_depth_settles_where_the_pilots_need_it() -> None:
    """Pilots that can end 10 points/s, behind rounds of 0.5 s: the steering's depth must not
    swing (it once counted the points it added itself as demand, and cycled 4..32)."""
    from gridhpo.steering.depth import WINDOW, QueueDepth

    d = QueueDepth(base=4)
    done, targets = 0.0, []
    for k in range(30):
        d.update(k * WINDOW, int(done), 0.5)
        # one result per slot every two rounds, at most what the pilots can do
        done += min(10.0, d.target / (2 * 0.5)) * WINDOW
        targets.append(d.target)
    assert len(set(targets[10:])) == 1, targets
    assert 4 + 4 * 10 * 0.5 * 0.5 <= targets[-1] <= 4 + 4 * 10 * 0.5


def test_a_redelivered_event_is_applied_once(env: tuple[Repository, Broker]) -> None:
    """The broker may deliver an event twice (AMQP after a lost ack): its second copy, same
    ``event_id``, neither counts the pilot's point again nor writes its metrics twice, in the
    same steering or in the next one."""
    repo, broker = env
    tid, _ = submit(repo, spec(parallel=1, max_points=2))
    s = Steering(repo, broker)
    s.step()
    msg = take(broker, tid)[0]
    metric = ev("metric", msg, seq=0, step=1, values={"loss": 2.0})
    finished = ev("finished", msg, value=1.0)
    feed(s, broker, [ev("started", msg), metric, metric, finished])
    feed(s, broker, [finished, metric])
    assert [p.points_done for p in repo.pilots(tid)] == [1]
    assert len(repo.metrics(tid)) == 1
    again = Steering(repo, broker)  # a restart: the redelivery finds its point ended
    again.refresh_tasks(force=True)
    feed(again, broker, [finished])
    assert [p.points_done for p in repo.pilots(tid)] == [1]
    assert [p.state for p in repo.points(tid)].count("finished") == 1


def test_a_report_after_an_attempt_finished_leaves_its_result(env: tuple[Repository, Broker]) -> None:
    """Found by the steering fuzzer: a failed or second finished event for an attempt that had
    finished was recorded as a late result, wiping the attempt's value (the point kept it)."""
    repo, broker = env
    tid, _ = submit(repo, spec(parallel=1))
    s = Steering(repo, broker)
    s.step()
    [m] = take(broker, tid)
    feed(s, broker, [ev("started", m), ev("finished", m, value=0.5)])
    feed(s, broker, [ev("failed", m, reason="late"), ev("finished", m, value=9.0)])
    [a] = repo.attempts(point_ids=[m["point_id"]])
    assert (a.state, a.value, a.message) == ("finished", 0.5, None)
    assert [(p.state, p.value) for p in repo.points(tid) if p.id == m["point_id"]] == [("finished", 0.5)]


def test_a_heartbeat_batched_with_its_result_does_not_undo_the_attempts_end(env: tuple[Repository, Broker]) -> None:
    """A steering that falls behind (a loaded machine, or a restart: the events sent while it
    was down come in one batch) applies a point's heartbeat and its result together. The
    attempt ends with the point, whether its row is new in the batch or from before a restart."""
    repo, broker = env
    tid, _ = submit(repo, spec(parallel=3, max_points=3, max_attempts=1))
    s1 = Steering(repo, broker)
    s1.step()
    fresh, restarted, failing = take(broker, tid)
    feed(s1, broker, [ev("started", restarted), ev("started", failing)])
    del s1  # killed: only the bookkeeping and the queue remain
    s2 = Steering(repo, broker)
    s2.refresh_tasks(force=True)
    feed(s2, broker, [
        ev("started", fresh), ev("heartbeat", fresh), ev("finished", fresh, value=1.0),
        ev("heartbeat", restarted), ev("finished", restarted, value=2.0),
        ev("heartbeat", failing), ev("failed", failing, reason="exit status 3"),
    ])
    ends = {p.number: (p.state, p.value) for p in repo.points(tid)}
    assert sorted(ends.values(), key=str) == sorted([("finished", 1.0), ("finished", 2.0), ("failed", None)], key=str)
    by_point = {a.point_id: a for a in repo.attempts(task_id=tid)}
    assert [(by_point[m["point_id"]].state, by_point[m["point_id"]].value, by_point[m["point_id"]].ended_at is not None)
            for m in (fresh, restarted, failing)] == [("finished", 1.0, True), ("finished", 2.0, True),
                                                      ("failed", None, True)]


def test_an_attempt_write_with_no_row_to_go_to_is_logged_as_an_error(env: tuple[Repository, Broker],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The steering's in-memory view lost an attempt's id (a bug): the result still ends the
    point, and the attempt write that had nowhere to go is reported, not dropped in silence."""
    repo, broker = env
    tid, _ = submit(repo, spec(parallel=1, max_points=1))
    s = Steering(repo, broker)
    s.step()
    [m] = take(broker, tid)
    feed(s, broker, [ev("started", m)])
    s.tasks[tid].open[m["point_id"]].attempt_id = None  # the inconsistency this check is for
    feed(s, broker, [ev("finished", m, value=1.0)])
    assert [p.state for p in repo.points(tid)] == ["finished"]
    assert any(r.levelname == "ERROR" and f"point {m['point_id']} attempt 1: no attempt row to record finished"
               in r.getMessage() for r in caplog.records)


def test_a_result_repeated_after_the_attempt_finished_leaves_its_record_alone(env: tuple[Repository, Broker]) -> None:
    """A finished attempt holds its point's value: a second pilot's result for the same
    attempt, or the same result redelivered to a restarted steering, is not recorded on it
    as a late result of an attempt given up."""
    repo, broker = env
    tid, _ = submit(repo, spec(parallel=1, max_points=2))
    s = Steering(repo, broker)
    s.step()
    [m] = take(broker, tid)
    finished = ev("finished", m, value=1.0, message="done")
    feed(s, broker, [ev("started", m), finished])
    feed(s, broker, [ev("finished", m, value=99.0)])  # a second pilot ran the same attempt
    again = Steering(repo, broker)  # a restart: the result is redelivered (its ack was lost)
    again.refresh_tasks(force=True)
    feed(again, broker, [finished])
    [a] = repo.attempts(point_ids=[m["point_id"]])
    assert (a.state, a.value, a.message) == ("finished", 1.0, "done")
