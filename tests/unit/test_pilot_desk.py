"""The steering's answers to pilots about their token, and the attacks their limits stop:
hand-made messages on the embedded defaults."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.evaluation.handshake import EXIT_REFUSED, Handshake
from gridhpo.protocol import Broker, Event, control_queue, events_queue, points_queue
from gridhpo.protocol.auth import key_id
from gridhpo.protocol.messages import Hello, HelloReply, parse_hello_reply
from gridhpo.steering.pilots import REFUSALS_PER_MINUTE
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import parse_task
from gridhpo.tokens import new_token


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Repository, Broker, int, str]]:
    repo = Repository(f"sqlite:///{tmp_path / 'b.db'}")
    broker = Broker(f"filesystem://{tmp_path / 'q'}")
    tid, _ = submit(repo, parse_task({
        "name": "t", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
        "optimiser": {"backend": "random", "seed": 1}, "budget": {"max_points": 6, "parallel": 1, "max_attempts": 3},
        "evaluation": {"command": "true", "heartbeat": 1, "lost_after": 600}}))
    token = repo.task(tid).token
    assert token
    yield repo, broker, tid, token
    broker.close()


def replies(broker: Broker, tid: int, pilot: str) -> list[HelloReply]:
    out = []
    while (d := broker.get(control_queue(tid, pilot))) is not None:
        out.append(parse_hello_reply(d.body))
        d.ack()
    return out


def hello(broker: Broker, tid: int, pilot: str, auth: str) -> Hello:
    h = Hello(task_id=tid, pilot_id=pilot, auth=auth)
    broker.publish(events_queue(tid), h.to_json())
    return h


def test_hellos_are_answered_and_a_flood_of_bad_ones_is_not(env: tuple[Repository, Broker, int, str]) -> None:
    repo, broker, tid, token = env
    s = Steering(repo, broker)
    s.step()
    good, bad = hello(broker, tid, "good", token), hello(broker, tid, "bad", "guess")
    s.step()
    assert [(r.accepted, r.hello_id, r.token_key) for r in replies(broker, tid, "good")] == [
        (True, good.hello_id, key_id(token))]
    assert [(r.accepted, r.reason, r.hello_id) for r in replies(broker, tid, "bad")] == [
        (False, "wrong or replaced token", bad.hello_id)]
    # the attack: hellos under made-up pilot ids, each answer creating a control queue
    flood = [hello(broker, tid, f"x{i}", "guess").pilot_id for i in range(REFUSALS_PER_MINUTE + 40)]
    for _ in range(5):
        s.step()
    answered = sum(len(replies(broker, tid, p)) for p in flood)
    assert answered == REFUSALS_PER_MINUTE - 1  # "bad" had one of them
    later = hello(broker, tid, "later", token)  # a good pilot is still answered
    s.step()
    assert [(r.accepted, r.hello_id) for r in replies(broker, tid, "later")] == [(True, later.hello_id)]
    assert broker.size(events_queue(tid)) == 0


def test_only_a_once_good_token_gets_a_running_point_requeued(env: tuple[Repository, Broker, int, str]) -> None:
    repo, broker, tid, token = env
    s = Steering(repo, broker)
    s.step()
    d = broker.get(points_queue(tid, token))
    assert d is not None
    d.ack()
    p: dict[str, Any] = d.body

    def send(etype: str, auth: str) -> None:
        ev = Event(type=etype, task_id=tid, point_id=p["point_id"], attempt=p["attempt"], pilot_id="a", auth=auth)
        broker.publish(events_queue(tid), ev.to_json())
        s.step()

    send("started", token)
    # the attack: events under the running pilot's id with a made-up token would stop its point
    send("heartbeat", "guess")
    assert repo.points(tid)[0].state == "running" and replies(broker, tid, "a") == []
    repo.set_token(tid, new_token(), None)  # gridhpo token --revoke
    s.refresh_tasks(force=True)
    send("heartbeat", token)  # the pilot of the revoked token
    [told] = replies(broker, tid, "a")
    assert not told.accepted and told.reason == "wrong or replaced token" and told.token_key == key_id(token)
    point = repo.points(tid)[0]
    assert (point.state, point.attempt) == ("queued", 2)
    assert [(a.state, a.end_reason) for a in repo.attempts(task_id=tid)] == [("interrupted", "revoked")]


def test_a_pilot_ignores_verdicts_on_another_token_or_hello(env: tuple[Repository, Broker, int, str]) -> None:
    _, broker, tid, token = env
    stops: list[tuple[str, int]] = []
    hs = Handshake(broker, tid, "p", token, lambda reason, code: stops.append((reason, code)))
    hs.hello_id = "mine"
    stale = [HelloReply(task_id=tid, accepted=False, reason="wrong or replaced token", token_key=key_id("old")),
             HelloReply(task_id=tid, accepted=True, hello_id="earlier", token_key=key_id(token)),
             HelloReply(task_id=tid + 1, accepted=False, reason="no token", token_key=key_id(token))]
    broker.publish_many([(control_queue(tid, "p"), r.to_json()) for r in stale])
    hs.poll(force=True)
    assert stops == [] and not hs.answered
    broker.publish(control_queue(tid, "p"), HelloReply(task_id=tid, accepted=False, reason="token expired",
                                                  token_key=key_id(token)).to_json())
    hs.poll(force=True)
    assert stops == [("token refused by the steering: token expired", EXIT_REFUSED)]
