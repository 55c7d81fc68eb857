from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gridhpo.checkpoints import STORES, ObjectStore, open_store
from tests import servers as _servers
from tests.seaweed import s3_store_url, seaweedfs
from tests.servers import postgres_database, rabbitmq_vhost

# A test marked integration reaches real servers; ``pytest -m "not integration"`` is the fast
# tier that needs none. A fixture with an embedded and a server variant marks only the latter.
integration = pytest.mark.integration

# the fixtures that are a server: a test using one, even through getfixturevalue, must be marked
SERVER_FIXTURES = {"pg_url": "PostgreSQL", "amqp_url": "RabbitMQ", "s3_endpoint": "SeaweedFS S3",
                   "podman": "Podman"}


def _unmarked_user(item: pytest.Item, names: list[str]) -> None:
    used = sorted({SERVER_FIXTURES[n] for n in names if n in SERVER_FIXTURES})
    if used and item.get_closest_marker("integration") is None:
        pytest.fail(f"{item.nodeid} uses {', '.join(used)} but is not marked integration", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # before any fixture, session ones included, so a server helper knows which test asks,
    # and an unmarked test naming a server fixture fails before it reaches the server
    _servers.current_test = item
    _unmarked_user(item, list(getattr(item, "fixturenames", [])))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The longest tests (marked heavy) start first, so that none of them is drawn last and keeps
    # a worker busy alone for minutes; with ``-n 2`` the other worker takes (steals) the short
    # tests still waiting behind them (``--dist worksteal`` in pyproject.toml). The sort is
    # stable, so every worker collects the same order (xdist requires it).
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _servers.current_test = None


@pytest.fixture(autouse=True)
def _servers_need_the_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """A session server fixture asked for through getfixturevalue by an unmarked test fails it
    (only its first user meets ``use_server`` in the helper that starts the server)."""
    yield
    _unmarked_user(request.node, [n for n in request.fixturenames if n not in request.node.fixturenames])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty GRIDHPO_HOME: the embedded defaults (SQLite file, folder queue) live there."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("GRIDHPO_HOME", str(h))
    for var in ("GRIDHPO_DB", "GRIDHPO_BROKER", "GRIDHPO_STORE"):
        monkeypatch.delenv(var, raising=False)
    return h


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def amqp_url() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture(params=["embedded", pytest.param("production", marks=integration)])
def servers(request: pytest.FixtureRequest, home: Path) -> Iterator[tuple[str, str]]:
    """(db_url, broker_url): the embedded defaults, then PostgreSQL + RabbitMQ."""
    if request.param == "embedded":
        yield f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}"
    else:
        with postgres_database() as db, rabbitmq_vhost() as broker:
            yield db, broker


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One real SeaweedFS S3 server on loopback for the whole session (started on first use)."""
    with seaweedfs() as endpoint:
        yield endpoint


@pytest.fixture(params=[name if name == "file" else pytest.param(name, marks=integration) for name in sorted(STORES)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """An empty object store of each backend: a local folder, and S3 on the SeaweedFS server."""
    if request.param == "file":
        s = open_store(f"file://{tmp_path / 'store'}")
    else:
        s = open_store(s3_store_url(request.getfixturevalue("s3_endpoint")))
    yield s
    s.close()
