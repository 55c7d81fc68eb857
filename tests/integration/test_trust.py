"""Attacks of issue 14 by whoever can reach the broker (its URL and credentials, as every pilot
has them), on the embedded defaults and on PostgreSQL + RabbitMQ: reading a task's events gives
no token; points and control messages the steering did not sign for the task are refused,
set aside with the reason, and never run; the task goes on."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gridhpo.bookkeeping import Repository
from gridhpo.evaluation.pilot import Pilot, PilotConfig, PilotStats
from gridhpo.protocol import (
    Broker,
    ControlMessage,
    EvaluationSpec,
    Event,
    PointMessage,
    PointObjective,
    control_queue,
    events_queue,
    points_queue,
)
from gridhpo.protocol.auth import Signer, pilot_credential, steering_signer
from gridhpo.protocol.messages import DEAD_LETTER_QUEUE, Hello
from gridhpo.steering.runner import submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import parse_task
from gridhpo.tokens import queue_key
from tests.helpers import steering, until

pytestmark = pytest.mark.integration
OUTPUT = """echo '{"status": 0, "loss": 0.5}' > output.json"""


def spec(name: str, command: str = OUTPUT, points: int = 1) -> Any:
    return parse_task({
        "name": name, "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
        "optimiser": {"backend": "random", "seed": 5}, "budget": {"max_points": points, "parallel": 1},
        "evaluation": {"command": command, "heartbeat": 1, "lost_after": 600}})


def dead_letters(broker: Broker) -> list[str]:
    out = []
    while (d := broker.get(DEAD_LETTER_QUEUE)) is not None:
        out.append(str(d.body["reason"]))
        d.ack()
    return out


@contextmanager
def pilot_running(broker_url: str, tid: int, token: str, workroot: Path, **cfg: Any) -> Iterator[list[PilotStats]]:
    """Task ``tid``'s pilot, holding its credential as `gridhpo token` prints it, in a thread."""
    done: list[PilotStats] = []
    with Broker(broker_url) as broker:
        pilot = Pilot(broker, PilotConfig(task_id=tid, token=pilot_credential(token), workroot=workroot, **cfg))
        thread = threading.Thread(target=lambda: done.append(pilot.run()), daemon=True)
        thread.start()
        try:
            yield done
        finally:
            pilot.request_stop("the test ends")
            thread.join(60)


def test_reading_a_tasks_events_gives_no_token(servers: tuple[str, str]) -> None:
    db, broker_url = servers
    repo = Repository(db)
    tid, _ = submit(repo, spec("victim", points=1))
    token = repo.task(tid).token
    assert token
    with Broker(broker_url) as broker:
        Steering(repo, broker).step()
    with Broker(broker_url) as broker:  # the victim's pilot takes its point and reports, holding its token
        point = broker.wait(points_queue(tid, token), timeout=10)
        assert point is not None
        point.ack()
        broker.publish(events_queue(tid), Hello(task_id=tid, pilot_id="victim", auth=token).to_json())
        broker.publish(events_queue(tid), Event(type="started", task_id=tid, point_id=point.body["point_id"],
                                                attempt=point.body["attempt"], pilot_id="victim", auth=token).to_json())
    with Broker(broker_url) as attacker:  # takes everything on the events queue, reads it, puts it back
        taken = [attacker.wait(events_queue(tid), timeout=10) for _ in range(2)]
        raw = b"".join(d._message.body if isinstance(d._message.body, bytes) else d._message.body.encode()
                       for d in taken if d is not None)
        assert len(raw) > 100 and token.encode() not in raw and queue_key(token).encode() not in raw
        for d in taken:
            assert d is not None
            attacker.publish(events_queue(tid), d.body)
            d.ack()
    with Broker(broker_url) as broker:
        s = Steering(repo, broker)
        until(lambda: (s.step(), repo.points(tid)[0].state == "running")[1], 30, "the put-back events to apply")
        assert dead_letters(broker) == []
    repo.close()


def test_a_pilot_runs_only_points_the_steering_signed_for_its_task(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker_url = servers
    repo = Repository(db)
    other, _ = submit(repo, spec("other"))
    tid, _ = submit(repo, spec("victim"))
    token = repo.task(tid).token
    assert token
    ran = tmp_path / "injected-ran"
    with Broker(broker_url) as attacker:
        def injected(task: int, number: int) -> dict[str, Any]:
            return PointMessage(task_id=task, task_name="victim", point_id=900 + number, number=number, attempt=1,
                                params={}, evaluation=EvaluationSpec(command=f"touch {ran}"),
                                objective=PointObjective()).to_json()

        forged_by = Signer(Ed25519PrivateKey.generate())  # a key of the attacker's own
        attacks = [injected(tid, 1), forged_by.sign(injected(tid, 2)),
                   steering_signer().sign(injected(other, 3)),  # the steering's, for another task
                   {**steering_signer().sign({**injected(tid, 4), "evaluation": {"command": "true"}}),
                    "evaluation": {"command": f"touch {ran}"}}]  # signed, then its command replaced
        attacker.publish_many([(points_queue(tid, token), body) for body in attacks])
        with steering(repo, broker_url, tid), pilot_running(broker_url, tid, token, tmp_path / "w",
                                                            max_points=1) as done:
            until(lambda: bool(done), 60, "the pilot to run the task's point")
            until(lambda: repo.task(tid).state != "active", 60, "the steering to apply its result")
        reasons = dead_letters(attacker)
    assert not ran.exists()
    assert done[0].finished == 1 and [p.state for p in repo.points(tid)] == ["finished"]
    refused = [r for r in reasons if "point message refused" in r]
    assert len(refused) == 4, reasons
    assert sum("not signed by the steering" in r for r in refused) == 1
    assert sum("signature is not the steering's" in r for r in refused) == 2  # another key; altered after signing
    assert sum(f"signed for task {other}" in r for r in refused) == 1
    repo.close()


def test_a_pilot_ignores_a_stop_the_steering_did_not_sign(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker_url = servers
    repo = Repository(db)
    go = tmp_path / "go"
    tid, _ = submit(repo, spec("victim", f"while [ ! -e {go} ]; do sleep 0.05; done; {OUTPUT}"))
    token = repo.task(tid).token
    assert token
    with Broker(broker_url) as attacker, steering(repo, broker_url, tid), \
            pilot_running(broker_url, tid, token, tmp_path / "w", pilot_id="pb", max_points=1) as done:
        until(lambda: [p.state for p in repo.points(tid)] == ["running"], 60, "the point to run")
        point = repo.points(tid)[0]
        attacker.publish(control_queue(tid, "pb"), ControlMessage(
            task_id=tid, point_id=point.id, attempt=point.attempt, action="stop", reason="forged").to_json())
        reasons: list[str] = []
        until(lambda: bool(reasons.extend(dead_letters(attacker)) or reasons), 30, "the forged stop set aside")
        go.touch()
        until(lambda: bool(done), 60, "the pilot to finish the point")
        until(lambda: repo.task(tid).state != "active", 60, "the steering to apply its result")
    assert any("control message refused: not signed by the steering" in r for r in reasons), reasons
    assert done[0].finished == 1 and done[0].interrupted == 0
    assert [(p.state, p.value) for p in repo.points(tid)] == [("finished", 0.5)]
    repo.close()
