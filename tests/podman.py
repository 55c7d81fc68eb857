"""A private Podman service speaking the Docker API, and images built without a registry.

``podman_service`` starts ``podman system service`` on a unix socket with the project's
configuration (containers/podman/*.conf via CONTAINERS_CONF / CONTAINERS_STORAGE_CONF) and its
image store in a temp dir, so a test run neither needs nor touches the machine's own Podman
setup. Images are built ``FROM scratch`` from a root filesystem made here: a static busybox
(Debian's busybox-static) is enough for shell evaluations.

Test modules use the session fixture by importing it: ``from tests.podman import podman  # noqa: F401``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import unavailable, use_server

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "containers" / "podman"
BUSYBOX = Path(os.environ.get("GRIDHPO_TEST_BUSYBOX", "/bin/busybox"))
BUSYBOX_IMAGE = "localhost/gridhpo-test-busybox:1"


@dataclass
class Podman:
    url: str  # a DOCKER_HOST value
    root: Path
    runroot: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(CONF / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(CONF / "storage.conf")}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "--root", str(self.root), "--runroot", str(self.runroot), *args],
                              env=self.env(), capture_output=True, text=True, check=check, timeout=300)

    def build(self, tag: str, context: Path) -> None:
        """``podman build`` of ``context`` (a Containerfile and what it copies) into this store."""
        proc = self.cli("build", "-q", "-t", tag, str(context), check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"podman build of {tag} failed: {proc.stderr.strip()}")


@contextmanager
def podman_service(tmp: Path) -> Iterator[Podman]:
    use_server("Podman")
    if shutil.which("podman") is None or shutil.which("runc") is None:
        unavailable("podman/runc not installed (.ci/setup-podman.sh installs them)")
    tmp.mkdir(parents=True, exist_ok=True)
    # podman refuses a runroot over 50 characters, which pytest's (xdist's) temp paths exceed
    runroot = Path(tempfile.mkdtemp(prefix="ghpo-podman-"))
    pm = Podman(url=f"unix://{tmp / 'podman.sock'}", root=tmp / "root", runroot=runroot)
    log = (tmp / "service.log").open("wb")
    proc = subprocess.Popen(
        ["podman", "--root", str(pm.root), "--runroot", str(pm.runroot), "system", "service", "--time", "0", pm.url],
        env=pm.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp / "podman.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                unavailable(f"podman system service did not start: {(tmp / 'service.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield pm
    finally:
        pm.cli("rm", "--all", "--force", "--time", "0", check=False)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(runroot, ignore_errors=True)


def busybox_context(dest: Path, files: dict[str, str] | None = None, cmd: str | None = None) -> Path:
    """A build context: static busybox as /bin/sh and its applets, plus ``files`` (path -> text)."""
    if not BUSYBOX.exists():
        unavailable(f"{BUSYBOX} missing: install busybox-static (.ci/setup-podman.sh)")
    root = dest / "rootfs"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    for rel, text in (files or {}).items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    lines = ["FROM scratch", "COPY rootfs/ /", 'ENV PATH=/bin']
    if cmd:
        lines.append(f"CMD {cmd}")
    (dest / "Containerfile").write_text("\n".join(lines) + "\n")
    return dest


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """A running Podman service with the busybox test image built."""
    tmp = tmp_path_factory.mktemp("podman")
    with podman_service(tmp / "svc") as pm:
        pm.build(BUSYBOX_IMAGE, busybox_context(tmp / "busybox"))
        yield pm
