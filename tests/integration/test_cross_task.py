"""One task's credentials never reach another task's records, on the embedded defaults and on
PostgreSQL + RabbitMQ.

An event sent with task A's token on A's events queue but naming a point of task B once
changed the value of B's attempt and added metric rows to B's point (the steering looked the
attempt up by point and attempt number alone)."""
from __future__ import annotations

from typing import Any

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.protocol import Broker, Event, events_queue, points_queue
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import parse_task
from tests.helpers import until

pytestmark = pytest.mark.integration


def spec(name: str) -> Any:
    return parse_task({
        "name": name, "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
        "optimiser": {"backend": "random", "seed": 1}, "budget": {"max_points": 2, "parallel": 1},
        "evaluation": {"command": "true", "heartbeat": 1, "lost_after": 600},
    })


def take(broker: Broker, queue: str) -> dict[str, Any]:
    d = broker.wait(queue, timeout=10)
    assert d is not None, f"no point in {queue}"
    d.ack()
    assert isinstance(d.body, dict)
    return d.body


def event(etype: str, task_id: int, point: dict[str, Any], token: str, **data: Any) -> Event:
    return Event(type=etype, task_id=task_id, point_id=point["point_id"], attempt=point["attempt"],
                 pilot_id=f"pilot-{task_id}", data=data, auth=token)


def test_an_event_changes_only_the_points_of_its_own_task(servers: tuple[str, str]) -> None:
    db, broker_url = servers
    repo = Repository(db)
    a, _ = submit(repo, spec("a"))
    b, _ = submit(repo, spec("b"))
    token_a, token_b = repo.task(a).token, repo.task(b).token
    assert token_a and token_b
    with Broker(broker_url) as broker:
        s = Steering(repo, broker)

        def send(*events: Event) -> None:
            broker.publish_many([(events_queue(e.task_id), e.to_json()) for e in events])
            until(lambda: (s.step(), all(broker.size(events_queue(e.task_id)) == 0 for e in events))[1],
                  30, "the steering to take the events")

        s.step()
        pa, pb = take(broker, points_queue(a, token_a)), take(broker, points_queue(b, token_b))
        send(event("started", b, pb, token_b), event("metric", b, pb, token_b, seq=0, step=1, values={"loss": 5.0}))
        before = [(x.id, x.value, x.message, x.state) for x in repo.attempts(task_id=b)]
        assert len(before) == 1 and len(repo.metrics(b)) == 1
        # A's pilot, with A's token, on A's queue, naming B's point and attempt
        send(event("metric", a, pb, token_a, seq=1, step=2, values={"loss": -1e9}),
             event("finished", a, pb, token_a, value=-1e9, message="forged"),
             event("failed", a, pb, token_a, reason="forged"))
        s.step()
        assert [(x.id, x.value, x.message, x.state) for x in repo.attempts(task_id=b)] == before
        assert [(m.seq, m.values) for m in repo.metrics(b)] == [(0, {"loss": 5.0})]
        assert [(p.state, p.value) for p in repo.points(b)] == [("running", None)]
        assert repo.metrics(a) == [] and [p.state for p in repo.points(a)] == ["queued"]
        # B's own pilot still reports on its point, and A's on its own
        send(event("finished", b, pb, token_b, value=0.25), event("finished", a, pa, token_a, value=0.5))
        assert [(p.state, p.value) for p in repo.points(b) if p.id == pb["point_id"]] == [("finished", 0.25)]
        assert [(p.state, p.value) for p in repo.points(a) if p.id == pa["point_id"]] == [("finished", 0.5)]
    repo.close()
