"""Chaos: pilots SIGKILLed every few seconds, the steering SIGKILLed and restarted, and in
production a private RabbitMQ and a private PostgreSQL (tests/private_servers.py, never the
machine's shared servers, which other tests are using) restarted under them. The task still
completes with no point lost, none counted twice, every value right, and no steering crash we
did not cause. The long version is benchmarks/chaos.py."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridhpo.protocol import Broker
from tests.chaos_harness import ChaosPlan, Restarts, run_chaos
from tests.private_servers import private_postgres, private_rabbitmq


@pytest.fixture(params=["embedded", pytest.param("production", marks=pytest.mark.integration)])
def chaos_servers(request: pytest.FixtureRequest, home: Path,
                  tmp_path: Path) -> Iterator[tuple[str, str, Restarts | None]]:
    """(db_url, broker_url, restarts): the embedded defaults, then a private PostgreSQL and a
    private RabbitMQ the test may restart."""
    if request.param == "embedded":
        yield f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}", None
        return
    with private_postgres(tmp_path) as (db, restart_pg), private_rabbitmq(tmp_path) as (broker, restart_mq):
        yield db, broker, Restarts(rabbitmq=restart_mq, postgres=restart_pg)


@pytest.mark.integration
@pytest.mark.heavy
@pytest.mark.timeout(240)
def test_chaos_completes_without_losing_or_doubling(chaos_servers: tuple[str, str, Restarts | None],
                                                    tmp_path: Path) -> None:
    db, broker, restarts = chaos_servers
    production = restarts is not None
    plan = ChaosPlan(points=150, pilots=4, kill_every=3.0, steering_kills=1,
                     rabbitmq_restarts=int(production), postgres_restarts=int(production), timeout=180.0)
    r = run_chaos(tmp_path, db, broker, plan, restarts=restarts)
    where = f"(logs in {r.log_dir})"
    assert r.state == "finished", f"task ended {r.state} {where}"
    assert r.pilot_kills >= 3 and r.steering_kills == 1, f"too little chaos happened: {r}"
    assert (r.rabbitmq_restarts, r.postgres_restarts) == ((1, 1) if production else (0, 0)), r
    assert r.steering_crashes == [], "\n".join(r.steering_crashes)
    assert r.points == plan.points
    assert r.lost == 0, f"{r.lost} points lost {where}"
    assert r.double_counted == 0, f"{r.double_counted} points with two finished attempts {where}"
    assert r.wrong_values == 0, f"{r.wrong_values} finished values differ from the objective {where}"
    # pilots are killed mid-evaluation after a checkpoint: their retries start from it
    assert r.resumed >= 1, f"no retried attempt resumed from its checkpoint after {r.pilot_kills} kills {where}"


@pytest.mark.integration
def test_consumer_survives_a_connection_reset_seen_first_by_an_ack(amqp_url: str) -> None:
    """RabbitMQ restarting under the steering: when the reset shows first in an ack (after a
    round's commit), kombu re-opens the connection by itself on the next use. The steering's
    events consumer lived on the old channel; it once stayed dead, so no event arrived again
    and the task never ended (found by benchmarks/chaos.py)."""
    with Broker(amqp_url) as steering, Broker(amqp_url) as pilot:
        for n in range(3):
            pilot.publish("events", {"n": n})
        held = []
        for _ in range(20):
            held += steering.drain("events", timeout=0.2)
            if len(held) == 3:
                break
        assert len(held) == 3
        # the reset, as a broker restart gives it, on the steering's consuming connection only
        steering._conn.connection.sock.shutdown(socket.SHUT_RDWR)
        for d in held:
            d.ack()  # fails: logged, and the message is delivered again
        pilot.publish("events", {"n": 99})
        got: list[int] = []
        for _ in range(50):
            got += [d.body["n"] for d in steering.drain("events", timeout=0.1)]
            if 99 in got:
                break
        assert sorted(got) == [0, 1, 2, 99]
