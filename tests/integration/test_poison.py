"""Poison messages against the real servers (PostgreSQL + RabbitMQ) and the embedded defaults.

A pickle, bytes labelled JSON and a 600-deep JSON once made ``gridhpo steer`` (and a pilot)
exit; the message stayed queued, so every restart exited again. Now each is set aside in the
dead-letter queue with its reason, and every task is served to its end."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.protocol import Broker, control_queue, events_queue, points_queue
from gridhpo.protocol.messages import DEAD_LETTER_QUEUE
from gridhpo.steering.runner import run_task, submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import poison, until

pytestmark = pytest.mark.integration

EVALS = Path(__file__).parent / "evals"


def task(tmp_path: Path, name: str) -> Any:
    shutil.copy(EVALS / "behave.py", tmp_path / "behave.py")
    return parse_task({
        "name": name,
        "search_space": {"x": {"type": "float", "low": -2, "high": 2}, "sleep": {"type": "fixed", "value": 0.6}},
        "optimiser": {"backend": "random", "seed": 3},
        "budget": {"max_points": 6, "parallel": 2},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 1, "lost_after": 30},
    }, base_dir=tmp_path)


def dead_letters(broker_url: str) -> list[dict[str, Any]]:
    with Broker(broker_url) as b:
        out = []
        while (d := b.get(DEAD_LETTER_QUEUE)) is not None:
            out.append(d.body)
            d.ack()
        return out


def test_poison_messages_stop_neither_the_steering_nor_a_pilot(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker_url = servers
    repo = Repository(db)
    tid, _ = submit(repo, task(tmp_path, "served"))
    other, _ = submit(repo, task(tmp_path, "idle"))  # active, not dispatched: its events are read too
    token = repo.task(tid).token
    marker = tmp_path / "unpickled"
    # the steering's events consumers
    expected = {q: poison(broker_url, q, marker) for q in (events_queue(tid), events_queue(other))}
    # a pilot's points consumer, and the control queue of the first pilot run_task starts
    expected[points_queue(tid, token)] = poison(broker_url, points_queue(tid, token), marker)
    expected[control_queue(tid, f"local-{tid}-0-{os.getpid()}")] = poison(
        broker_url, control_queue(tid, f"local-{tid}-0-{os.getpid()}"), marker)

    result = run_task(repo, broker_url, tid, pilots=1)

    assert result.state == "finished"
    assert [p.state for p in repo.points(tid)] == ["finished"] * 6
    assert repo.task(other).state == "active"
    records = dead_letters(broker_url)
    assert not marker.exists(), "a pickle was loaded"
    for queue, reasons in expected.items():
        got = [r["reason"] for r in records if r["queue"] == queue]
        assert len(got) == len(reasons), (queue, got)
        for reason in reasons:
            assert any(reason in g for g in got), (queue, reason, got)
    kinds = {r["queue"]: r["reason"].split(":")[0] for r in records}
    assert kinds[events_queue(tid)] == "malformed event"
    assert kinds[points_queue(tid, token)] == f"malformed point message for task {tid}"
    assert kinds[control_queue(tid, f"local-{tid}-0-{os.getpid()}")].startswith("malformed control message")


def test_a_dead_letter_record_keeps_no_token(servers: tuple[str, str], tmp_path: Path) -> None:
    """Events carry their task's token; the dead-letter queue, which any operator reads, once
    kept it in the record of a malformed or refused event."""
    from gridhpo.protocol import PROTOCOL_VERSION, Event
    from gridhpo.steering.service import Steering

    db, broker_url = servers
    repo = Repository(db)
    tid, _ = submit(repo, task(tmp_path, "t"))
    token = repo.task(tid).token
    assert token
    with Broker(broker_url) as b:
        s = Steering(repo, b)
        s.step()
        malformed = {"kind": "event", "v": PROTOCOL_VERSION, "type": "exploded", "task_id": tid, "auth": token}
        wrong_queue = Event(type="started", task_id=tid + 1, point_id=1, attempt=1, pilot_id="p", auth=token)
        b.publish_many([(events_queue(tid), malformed), (events_queue(tid), wrong_queue.to_json())])
        until(lambda: (s.step(), b.size(events_queue(tid)) == 0)[1], 30, "the steering to take the events")
        s.step()
    records = dead_letters(broker_url)
    assert len(records) == 2, records
    assert all("auth" not in r["body"] for r in records)
    assert token not in repr(records)
    repo.close()
