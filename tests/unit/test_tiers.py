"""The fast tier, ``pytest -m "not integration"``, needs no server: every helper that reaches one
refuses a test not marked integration, before it touches the server (tests/servers.py)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.browser import Browser
from tests.podman import podman_service
from tests.private_servers import private_postgres, private_rabbitmq
from tests.seaweed import seaweedfs
from tests.servers import postgres_database, rabbitmq_vhost
from tests.slurm import slurm_cluster

REPO = Path(__file__).resolve().parents[2]

# each server helper, with the kind of server it names when it refuses
HELPERS: dict[str, tuple[str, Callable[[Path], Any]]] = {
    "postgres_database": ("PostgreSQL", lambda tmp: postgres_database().__enter__()),
    "private_postgres": ("PostgreSQL", lambda tmp: private_postgres(tmp).__enter__()),
    "rabbitmq_vhost": ("RabbitMQ", lambda tmp: rabbitmq_vhost().__enter__()),
    "private_rabbitmq": ("RabbitMQ", lambda tmp: private_rabbitmq(tmp).__enter__()),
    "seaweedfs": ("SeaweedFS S3", lambda tmp: seaweedfs().__enter__()),
    "podman_service": ("Podman", lambda tmp: podman_service(tmp).__enter__()),
    "slurm_cluster": ("Slurm", lambda tmp: slurm_cluster(tmp).__enter__()),
    "Browser": ("Chromium", lambda tmp: Browser(tmp)),
}


@pytest.mark.parametrize("helper", sorted(HELPERS))
def test_a_server_helper_refuses_a_test_not_marked_integration(helper: str, tmp_path: Path) -> None:
    kind, start = HELPERS[helper]
    with pytest.raises(pytest.fail.Exception, match=f"uses {kind} but is not marked integration"):
        start(tmp_path)


def test_no_servers_by_design_makes_a_helper_fail_even_for_an_integration_test(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDHPO_NO_SERVERS", "1")
    monkeypatch.setattr(servers, "current_test", None)  # as if the asking test were marked
    with pytest.raises(pytest.fail.Exception, match="GRIDHPO_NO_SERVERS is set: no PostgreSQL"):
        with contextlib.ExitStack() as stack:
            stack.enter_context(postgres_database())


def test_fixture_variants_that_need_a_server_are_deselected_and_the_embedded_ones_kept() -> None:
    """The ``servers`` and ``store`` fixtures mark only their server variant integration."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not integration",
                           "-p", "no:cacheprovider", "tests/integration/test_loop.py",
                           "tests/unit/test_store_contract.py"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert any("[embedded]" in i for i in ids) and any("[file]" in i for i in ids), proc.stdout + proc.stderr
    assert not [i for i in ids if "[production]" in i or "[s3]" in i], ids
