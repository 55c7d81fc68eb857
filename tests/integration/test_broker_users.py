"""Per-task broker users on the real RabbitMQ (issue 14): a pilot holding task A's broker
credentials cannot consume or publish on task B's queues at all, by ``Broker`` or by raw AMQP
(default exchange, B's exchange, a binding of its own queue to B's exchange), and a pilot of A
with those credentials alone runs A's points to the end."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import amqp
import pytest
from click.testing import CliRunner

from gridhpo.bookkeeping import Repository
from gridhpo.cli import main
from gridhpo.errors import QueueError
from gridhpo.evaluation.pilot import Pilot, PilotConfig
from gridhpo.protocol import Broker, control_queue, events_queue, points_queue
from gridhpo.protocol.auth import pilot_credential
from gridhpo.protocol.brokeradmin import Grant, RabbitAdmin
from gridhpo.protocol.messages import DEAD_LETTER_QUEUE
from gridhpo.steering.runner import submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import steering, until
from tests.servers import postgres_database

pytestmark = pytest.mark.integration
A, B = 1, 2


@pytest.fixture
def rabbit(amqp_url: str) -> Iterator[RabbitAdmin]:
    admin = RabbitAdmin(amqp_url)
    try:
        yield admin
    finally:
        for task in (A, B):
            admin.revoke(task)


def raw(url: str) -> amqp.Connection:
    u = urlparse(url)
    conn = amqp.Connection(f"{u.hostname}:{u.port}", userid=unquote(u.username or ""),
                           password=unquote(u.password or ""), virtual_host=unquote(u.path[1:]), confirm_publish=True)
    conn.connect()
    return conn


def refused(url: str, attempt: Callable[[Broker], object]) -> bool:
    with Broker(url) as broker:
        try:
            attempt(broker)
        except QueueError as exc:
            return "ACCESS_REFUSED" in str(exc) or "403" in str(exc)
    return False


def test_a_tasks_pilot_cannot_consume_or_publish_on_another_tasks_queues(amqp_url: str, rabbit: RabbitAdmin) -> None:
    a = rabbit.grant(A)
    rabbit.grant(B)
    with Broker(amqp_url) as service:  # the steering's user
        service.publish(points_queue(B, "k"), {"kind": "point", "of": "B"})
        service.publish(events_queue(B), {"kind": "event", "of": "B"})
        service.publish(control_queue(B, "pb"), {"kind": "control", "of": "B"})
        attacks: list[Callable[[Broker], object]] = [
            lambda p: p.get(points_queue(B, "k")), lambda p: p.get(events_queue(B)),
            lambda p: p.drain(events_queue(B), timeout=0.2), lambda p: p.get(control_queue(B, "pb")),
            lambda p: p.get(DEAD_LETTER_QUEUE),
            lambda p: p.publish(points_queue(B, "k"), {"kind": "point", "of": "A"}),
            lambda p: p.publish(events_queue(B), {"kind": "event", "of": "A"}),
            lambda p: p.publish(control_queue(B, "pb"), {"kind": "control", "of": "A"}),
            lambda p: p.purge(points_queue(B, "k")), lambda p: p.delete(events_queue(B)),
        ]
        assert [refused(a.pilot_url, attack) for attack in attacks] == [True] * len(attacks)
        conn = raw(a.pilot_url)
        try:
            for exchange in ("", "gridhpo.task.2", "amq.direct", "amq.topic"):
                with pytest.raises(amqp.exceptions.AccessRefused):
                    conn.channel().basic_publish(amqp.Message("x"), exchange=exchange, routing_key=events_queue(B))
            with pytest.raises(amqp.exceptions.AccessRefused):
                conn.channel().queue_bind(events_queue(A), exchange="gridhpo.task.2", routing_key=events_queue(B))
        finally:
            conn.close()
        # B's queues hold exactly what the steering put there
        assert [service.size(q) for q in (points_queue(B, "k"), events_queue(B), control_queue(B, "pb"))] == [1, 1, 1]
        assert service.size(DEAD_LETTER_QUEUE) == 0


def test_a_tasks_pilot_uses_its_own_queues_and_sets_messages_aside(amqp_url: str, rabbit: RabbitAdmin) -> None:
    a = rabbit.grant(A)
    with Broker(amqp_url) as service, Broker(a.pilot_url) as pilot:
        service.publish(points_queue(A, "k"), {"kind": "point", "n": 1})
        d = pilot.get(points_queue(A, "k"))
        assert d is not None and d.body == {"kind": "point", "n": 1}
        d.dead_letter("set aside by the test")  # through A's exchange: the pilot may write there
        pilot.publish(events_queue(A), {"kind": "event", "n": 2})
        pilot.publish(control_queue(A, "pa"), {"kind": "control", "n": 3})
        assert [b.body for b in pilot.drain(control_queue(A, "pa"), timeout=2)] == [{"kind": "control", "n": 3}]
        got = service.wait(events_queue(A), timeout=5)
        assert got is not None and got.body == {"kind": "event", "n": 2}
        dead = service.wait(DEAD_LETTER_QUEUE, timeout=5)
        assert dead is not None and dead.body["reason"] == "set aside by the test"


def test_revoked_credentials_connect_no_more(amqp_url: str, rabbit: RabbitAdmin) -> None:
    a = rabbit.grant(A)
    with Broker(a.pilot_url) as pilot:
        pilot.size(events_queue(A))
    assert rabbit.revoke(A) and not rabbit.revoke(A)
    with pytest.raises(QueueError):
        Broker(a.pilot_url)


def test_a_pilot_with_its_tasks_credentials_alone_runs_the_task(amqp_url: str, tmp_path: Path,
                                                                home: Path) -> None:
    with postgres_database() as db:
        repo = Repository(db)
        tid, _ = submit(repo, parse_task({
            "name": "own-queues", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
            "optimiser": {"backend": "random", "seed": 3}, "budget": {"max_points": 3, "parallel": 1},
            "evaluation": {"command": """echo '{"status": 0, "loss": 0.5}' > output.json""", "heartbeat": 1,
                           "lost_after": 60}}))
        admin = RabbitAdmin(amqp_url)
        grant: Grant = admin.grant(tid)
        try:
            token = repo.task(tid).token
            assert token
            with steering(repo, amqp_url, tid), Broker(grant.pilot_url) as broker:
                pilot = Pilot(broker, PilotConfig(task_id=tid, token=pilot_credential(token), max_points=3,
                                                  workroot=tmp_path / "w", idle_timeout=60))
                done: list[Any] = []
                thread = threading.Thread(target=lambda: done.append(pilot.run()), daemon=True)
                thread.start()
                thread.join(120)
                assert not thread.is_alive() and done[0].finished == 3
                until(lambda: repo.task(tid).state != "active", 60, "the steering to apply the last result")
            assert [p.state for p in repo.points(tid)] == ["finished"] * 3
        finally:
            admin.revoke(tid)
            repo.close()


def test_the_admin_commands_grant_and_revoke(amqp_url: str, rabbit: RabbitAdmin) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["admin", "broker", "grant", str(A), "--broker", amqp_url])
    assert out.exit_code == 0, out.output
    pilot_url = out.stdout.strip().splitlines()[-1]
    with Broker(pilot_url) as pilot:
        pilot.publish(events_queue(A), {"kind": "event"})
        assert refused(pilot_url, lambda p: p.get(events_queue(B)))
    out = runner.invoke(main, ["admin", "broker", "revoke", str(A), "--broker", amqp_url])
    assert out.exit_code == 0 and "removed" in out.output
    with pytest.raises(QueueError):
        Broker(pilot_url)
