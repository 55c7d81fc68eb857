"""Reaching the real servers the integration tests need.

A test that needs a server it cannot reach skips with the reason on a developer's machine
and fails in CI, where ``GRIDHPO_REQUIRE_SERVERS=1`` is set by ``.ci/run``.

Tests run in two tiers: ``pytest -m "not integration"`` needs no server at all. Every helper
that reaches a server (PostgreSQL, RabbitMQ, SeaweedFS S3, Podman, Slurm, Chromium) first calls
``use_server``, which fails a test that is not marked ``integration``, so the fast tier stays
server-free on every run; ``GRIDHPO_NO_SERVERS=1`` additionally makes every helper fail, to
prove a tier needs no server without stopping the machine's servers.
"""
from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gridhpo.protocol.brokeradmin import BrokerAdminError, RabbitAdmin

PG_ADMIN = os.environ.get("GRIDHPO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("GRIDHPO_TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("GRIDHPO_TEST_AMQP_PORT", "5672"))
MANAGEMENT_PORT = int(os.environ.get("GRIDHPO_TEST_AMQP_MANAGEMENT_PORT", "15672"))


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def required() -> bool:
    return _flag("GRIDHPO_REQUIRE_SERVERS")


def unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (CI) a test whose server is missing."""
    if required():
        pytest.fail(f"required server missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


# the test now running, set by tests/conftest.py, so that a helper knows who asks for a server
current_test: pytest.Item | None = None


def use_server(kind: str) -> None:
    """Called by every helper before it reaches a server: only integration tests may."""
    item = current_test
    if item is not None and item.get_closest_marker("integration") is None:
        pytest.fail(f"{item.nodeid} uses {kind} but is not marked integration "
                    "(add @pytest.mark.integration, or pytest.param(..., marks=pytest.mark.integration))",
                    pytrace=False)
    if _flag("GRIDHPO_NO_SERVERS"):
        pytest.fail(f"GRIDHPO_NO_SERVERS is set: no {kind} for {item.nodeid if item else 'this test'}",
                    pytrace=False)


def free_port() -> int:
    """A TCP port free on loopback now (the server binding it next is the only user in practice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; dropped afterwards."""
    use_server("PostgreSQL")
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install 'gridhpo[postgres]')")
        raise
    name = f"gridhpo_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_ADMIN} unreachable: {str(exc).strip().splitlines()[0]}")
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _management() -> RabbitAdmin:
    """RabbitMQ's management API as guest (per test: a vhost made and removed in about 20 ms,
    where each ``rabbitmqctl`` call starts an Erlang VM: about 1 s and a core)."""
    return RabbitAdmin(f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/", f"http://{AMQP_HOST}:{MANAGEMENT_PORT}")


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """An AMQP URL on a fresh RabbitMQ virtual host, so tests never share queues."""
    use_server("RabbitMQ")
    if not port_open(AMQP_HOST, AMQP_PORT):
        unavailable(f"RabbitMQ at {AMQP_HOST}:{AMQP_PORT} unreachable")
    if not port_open(AMQP_HOST, MANAGEMENT_PORT):
        unavailable(f"RabbitMQ's management API at {AMQP_HOST}:{MANAGEMENT_PORT} unreachable: "
                    "rabbitmq-plugins enable rabbitmq_management (.ci/services.sh does)")
    vhost = f"gridhpo-test-{uuid.uuid4().hex[:10]}"
    admin = _management()
    admin.call("PUT", f"/vhosts/{vhost}")
    admin.call("PUT", f"/permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    try:
        yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    finally:
        try:
            admin.call("DELETE", f"/vhosts/{vhost}")
        except BrokerAdminError:
            pass  # the broker went away under the test: that test reports it
