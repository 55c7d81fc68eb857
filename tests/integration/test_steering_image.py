"""The steering image built for real and run under Podman (issue 15 item 6).

No registry is reachable here: the base image is a Debian root filesystem made with
debootstrap (containers/base/make-rootfs.sh, by .ci/setup-base-image.sh) and imported into the
test's private Podman store; the Containerfile is the one users build, with ``--build-arg
BASE=...``. The container's steering serves a task submitted on the host, against this
machine's PostgreSQL and RabbitMQ, and ordinary pilots on the host finish it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.steering.reports import results
from gridhpo.steering.runner import submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import until
from tests.podman import Podman
from tests.podman import podman as podman  # session fixture
from tests.servers import postgres_database, rabbitmq_vhost, unavailable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROOTFS = Path(os.environ.get("GRIDHPO_TEST_ROOTFS", "/var/cache/gridhpo/debian-bookworm-python3.tar"))
BASE = "localhost/gridhpo-base:bookworm"
IMAGE = "localhost/gridhpo-steering:test"
PIP_CACHE = Path.home() / ".cache" / "pip"
# the CA bundle this machine's pip trusts (an egress proxy's CA may be in it), lent to the build
CA_BUNDLE = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def steering_image(podman: Podman) -> str:
    if not ROOTFS.is_file():
        unavailable(f"{ROOTFS} missing: .ci/setup-base-image.sh makes it (debootstrap)")
    podman.cli("import", str(ROOTFS), BASE)
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    # the host's pip cache serves the build's downloads; the image itself keeps no cache
    proc = podman.cli("build", "-q", "-t", IMAGE, "-f", str(REPO / "containers/steering/Containerfile"),
                      "--build-arg", f"BASE={BASE}", "--build-arg", "EXTRAS=postgres",
                      "--build-arg", "PIP_CACHE_DIR=/host-pip-cache", "-v", f"{PIP_CACHE}:/host-pip-cache",
                      *(["--build-arg", "PIP_CERT=/host-ca.crt", "-v", f"{CA_BUNDLE}:/host-ca.crt:ro"]
                        if CA_BUNDLE.is_file() else []),
                      str(REPO), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return IMAGE


@pytest.fixture
def container_steering(podman: Podman, steering_image: str) -> Iterator[tuple[str, str, str]]:
    with postgres_database() as db, rabbitmq_vhost() as broker:
        name = f"gridhpo-steering-{os.getpid()}"
        podman.cli("run", "-d", "--name", name, "--network", "host", "-e", f"GRIDHPO_DB={db}",
                   "-e", f"GRIDHPO_BROKER={broker}", steering_image, "steer", "-v")
        try:
            yield db, broker, name
        finally:
            logs = podman.cli("logs", name, check=False)
            print(logs.stdout[-2000:], logs.stderr[-2000:])
            podman.cli("rm", "--force", "--time", "0", name, check=False)


def test_the_steering_image_serves_a_task_that_host_pilots_finish(container_steering: tuple[str, str, str],
                                                                  podman: Podman, tmp_path: Path) -> None:
    db, broker, name = container_steering
    repo = Repository(db)
    spec = parse_task({
        "name": "imaged", "search_space": {"x": {"type": "float", "low": -1, "high": 1}},
        "optimiser": {"backend": "random", "seed": 3}, "budget": {"max_points": 6, "parallel": 2},
        "evaluation": {"command": "python -c \"import json; p=json.load(open('input.json'));"
                                  "json.dump({'loss': p['x']**2}, open('output.json','w'))\""},
    }, base_dir=tmp_path)
    tid, _ = submit(repo, spec)
    # the container's steering gives the task its token when it takes the task up
    until(lambda: repo.task(tid).token, 120, "the containerised steering to take the task up")
    token_file = tmp_path / "token"
    token_file.write_text(repo.task(tid).token or "")
    token_file.chmod(0o600)
    pilots = [subprocess.Popen([sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(tid),
                                "--broker", broker, "--token-file", str(token_file), "--idle-timeout", "60",
                                "--workdir", str(tmp_path / f"work{i}")],
                               env={**os.environ, "GRIDHPO_HOME": str(tmp_path / "home")}, cwd=tmp_path)
              for i in range(2)]
    try:
        until(lambda: repo.task(tid).state == "finished", 180, "the task to finish")
    finally:
        for p in pilots:
            p.terminate()
            p.wait(timeout=60)
    rows = results(repo, repo.task(tid))
    assert len(rows) == 6 and all(r["state"] == "finished" for r in rows)
    assert all(abs(r["value"] - r["params"]["x"] ** 2) < 1e-12 for r in rows)
    assert podman.cli("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
