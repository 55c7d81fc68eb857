"""The steering image built for real and run under Podman (issue 15 item 6).

No registry is reachable here: the base image is a Debian root filesystem made with
debootstrap (containers/base/make-rootfs.sh, by .ci/setup-base-image.sh) and imported into the
test's private Podman store; the Containerfile is the one users build, with ``--build-arg
BASE=...``. ``gridhpo server`` from the image, against this machine's PostgreSQL and RabbitMQ,
takes a task submitted through its API with a user's token, and pilots that reach only the
service over HTTP finish it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.steering.reports import results
from tests.helpers import until
from tests.podman import Podman
from tests.podman import podman as podman  # session fixture
from tests.servers import free_port, postgres_database, rabbitmq_vhost, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

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
def container_service(podman: Podman, steering_image: str) -> Iterator[tuple[str, str, str]]:
    """``gridhpo server`` from the image, on the host's network, with the machine's servers."""
    with postgres_database() as db, rabbitmq_vhost() as broker:
        name, port = f"gridhpo-service-{os.getpid()}", free_port()
        podman.cli("run", "-d", "--name", name, "--network", "host", "-e", f"GRIDHPO_DB={db}",
                   "-e", f"GRIDHPO_BROKER={broker}", steering_image, "server", "--port", str(port), "-v")
        url = f"http://127.0.0.1:{port}"
        try:
            until(lambda: _answers(url), 120, "the containerised service to answer")
            yield db, url, name
        finally:
            logs = podman.cli("logs", name, check=False)
            print(logs.stdout[-3000:], logs.stderr[-3000:])
            podman.cli("rm", "--force", "--time", "0", name, check=False)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/openapi.json", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _gridhpo(*args: str, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "gridhpo.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


def test_the_service_image_runs_a_task_submitted_through_the_api_with_http_only_pilots(
        container_service: tuple[str, str, str], podman: Podman, tmp_path: Path) -> None:
    db, url, name = container_service
    # an administrator on the service's machine (here: in its container) makes a user and a token
    podman.cli("exec", name, "gridhpo", "admin", "user", "add", "alice")
    api_token = podman.cli("exec", name, "gridhpo", "admin", "token", "create", "alice").stdout.strip()
    assert api_token
    (tmp_path / "task.yaml").write_text(
        "name: imaged\nsearch_space: {x: {type: float, low: -1, high: 1}}\n"
        "optimiser: {backend: random, seed: 3}\nbudget: {max_points: 6, parallel: 2}\n"
        "evaluation:\n  command: >-\n    python -c \"import json; p=json.load(open('input.json'));"
        " json.dump({'loss': p['x']**2}, open('output.json','w'))\"\n")
    # the user's machine knows the service's URL and an API token: no database, no broker
    env = {k: v for k, v in os.environ.items() if k not in ("GRIDHPO_DB", "GRIDHPO_BROKER")}
    env.update(GRIDHPO_SERVER=url, GRIDHPO_API_TOKEN=api_token, GRIDHPO_HOME=str(tmp_path / "home"))
    tid = int(_gridhpo("submit", "task.yaml", env=env, cwd=tmp_path).splitlines()[0])
    credential = _gridhpo("token", str(tid), env=env, cwd=tmp_path).strip()
    token_file = tmp_path / "token"
    token_file.write_text(credential)
    token_file.chmod(0o600)
    # pilots that reach only the service (HTTP): a broker URL they could use is not given
    pilots = [subprocess.Popen([sys.executable, "-m", "gridhpo.cli", "pilot", "--server", url, "--task", str(tid),
                                "--token-file", str(token_file), "--idle-timeout", "60",
                                "--workdir", str(tmp_path / f"work{i}")],
                               env={**env, "GRIDHPO_BROKER": "amqp://nobody:wrong@127.0.0.1:1//"}, cwd=tmp_path)
              for i in range(2)]
    repo = Repository(db)
    try:
        until(lambda: repo.task(tid).state == "finished", 180, "the task to finish")
    finally:
        for p in pilots:
            p.terminate()
            p.wait(timeout=60)
    rows = results(repo, repo.task(tid))
    assert len(rows) == 6 and all(r["state"] == "finished" for r in rows)
    assert all(abs(r["value"] - r["params"]["x"] ** 2) < 1e-12 for r in rows)
    assert {p.site for p in repo.pilots(tid)} == {"local"} and len(repo.pilots(tid)) == 2
    assert "imaged" in _gridhpo("status", env=env, cwd=tmp_path)  # the user reads it through the service too
    assert podman.cli("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
