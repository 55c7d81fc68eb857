"""The private servers a test may restart (tests/private_servers.py): they are not the shared
ones, a restart really drops their sessions and keeps their data, they take nothing from the
shared node's configuration, and nothing of them is left afterwards."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gridhpo.protocol import Broker
from tests.private_servers import private_postgres, private_rabbitmq
from tests.servers import AMQP_PORT, port_open


@pytest.mark.integration
def test_a_private_postgres_restart_drops_its_sessions_and_keeps_its_data(tmp_path: Path) -> None:
    import psycopg

    with private_postgres(tmp_path) as (url, restart):
        plain = url.replace("+psycopg", "")
        port = urlsplit(plain).port
        assert port is not None and port != 5432
        before = psycopg.connect(plain, autocommit=True)
        before.execute("CREATE TABLE kept (n int)")
        before.execute("INSERT INTO kept VALUES (7)")
        restart()
        with pytest.raises(psycopg.OperationalError):
            before.execute("SELECT 1")
        with psycopg.connect(plain) as after:
            assert after.execute("SELECT n FROM kept").fetchall() == [(7,)]
            assert after.execute("SHOW listen_addresses").fetchall() == [("127.0.0.1",)]
    assert not port_open("127.0.0.1", port)
    assert "database system is ready" in (tmp_path / "postgres.log").read_text()


@pytest.mark.integration
def test_a_private_rabbitmq_restart_keeps_durable_queues_and_its_own_user(tmp_path: Path) -> None:
    import amqp
    from amqp.exceptions import AccessRefused

    with private_rabbitmq(tmp_path) as (url, restart):
        parts = urlsplit(url)
        assert parts.port is not None and parts.port != AMQP_PORT
        assert parts.username == "gridhpo"
        with Broker(url) as broker:
            broker.publish("kept", {"n": 7})
        restart(0.5)
        with Broker(url) as broker:
            got = []
            for _ in range(50):
                got += broker.drain("kept", timeout=0.2)
                if got:
                    break
            assert [d.body for d in got] == [{"n": 7}]
            got[0].ack()
        guest = amqp.Connection(f"127.0.0.1:{parts.port}", userid="guest", password="guest")
        with pytest.raises(AccessRefused):
            guest.connect()  # its own user only: no guest account to guess
    assert not port_open("127.0.0.1", parts.port)
    # the shared node's enabled plugins (management on port 15672) did not leak in
    assert "Server startup complete; 0 plugins started." in (tmp_path / "rabbitmq.log").read_text()
