"""A real ``gridhpo server`` process for the service tests: HTTPS with a throw-away
certificate, users made with ``gridhpo admin``, and the CLI run as a user of the service."""
from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from gridhpo.cli.main import main
from tests.helpers import until
from tests.servers import free_port

# a bookkeeping no user of the service can reach: a command that used it would fail
NO_DB = "postgresql://nobody@127.0.0.1:1/none"



def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return cert, key


@dataclass
class Service:
    url: str
    db: str
    broker: str
    cafile: Path
    proc: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)

    def admin(self, *args: str) -> Result:
        """``gridhpo admin ...`` on the server's machine (its bookkeeping)."""
        return CliRunner().invoke(main, ["admin", *args, "--db", self.db], catch_exceptions=False)

    def add_user(self, name: str, admin: bool = False) -> str:
        assert self.admin("user", "add", name, *(["--admin"] if admin else [])).exit_code == 0
        return self.add_user_token(name)

    def add_user_token(self, name: str) -> str:
        """A new API token of user ``name``, the one their commands use from now on."""
        out = self.admin("token", "create", name, "--expires", "1d")
        assert out.exit_code == 0, out.output
        self.tokens[name] = out.stdout.strip().splitlines()[-1]
        return self.tokens[name]

    def env(self, user: str | None) -> dict[str, str | None]:
        return {"GRIDHPO_SERVER": self.url, "GRIDHPO_API_TOKEN": self.tokens[user] if user else None,
                "GRIDHPO_DB": NO_DB, "GRIDHPO_BROKER": None, "SSL_CERT_FILE": str(self.cafile)}

    def cli(self, user: str, *args: str) -> Result:
        """A gridhpo command as ``user`` of the service, with no bookkeeping reachable."""
        return CliRunner().invoke(main, list(args), env=self.env(user), catch_exceptions=False)

    def local(self, *args: str) -> Result:
        """The same command against the bookkeeping itself."""
        env: dict[str, str | None] = {"GRIDHPO_SERVER": None, "GRIDHPO_DB": self.db}
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    def start(self) -> None:
        """The server process (again, after ``kill``: the same port, bookkeeping and broker)."""
        self.proc = _spawn(self.command, self.environ, self.log)
        until(self.answers, 60, "the server to answer")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is given back or released by the process itself."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/openapi.json", timeout=2,
                                        context=ssl.create_default_context(cafile=str(self.cafile))) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            assert self.proc.poll() is None, f"the server exited: {self.log.read_text()[-3000:]}"
            return False


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@contextmanager
def running_service(db: str, broker: str, folder: Path, tls: bool = True, extra: tuple[str, ...] = ()
                    ) -> Iterator[Service]:
    """``gridhpo server`` on a free loopback port: HTTPS with a throw-away certificate, or
    plain HTTP (``tls=False``, for clients that cannot be told a private CA)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(folder)
    port = free_port()
    log = folder / "server.log"
    env = dict(os.environ, GRIDHPO_DB=db, GRIDHPO_BROKER=broker)
    env.pop("GRIDHPO_SERVER", None)
    https = ["--certfile", str(cert), "--keyfile", str(key)] if tls else []
    cmd = [sys.executable, "-m", "gridhpo.cli", "server", "--port", str(port), *https, *extra, "-v"]
    service = Service(f"{'https' if tls else 'http'}://127.0.0.1:{port}", db, broker, cert, _spawn(cmd, env, log), log,
                      command=cmd, environ=env)
    try:
        until(service.answers, 60, "the server to answer")
        yield service
    finally:
        proc = service.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
