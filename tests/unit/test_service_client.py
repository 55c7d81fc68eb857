"""The user's side of the service: URLs that would leak the API token are refused, the token
file is the user's alone, no redirect takes the token elsewhere, and the client and the remote
commands load without SQLAlchemy (a light install)."""
from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridhpo.errors import ConfigError
from gridhpo.service import client
from gridhpo.service.client import RemoteError, Service, api_token, check_url, save_login


@pytest.mark.parametrize("url", ["http://example.org", "http://10.0.0.1:8443", "ftp://127.0.0.1",
                                 "https://alice:pw@example.org", "https://example.org/?token=x", "example.org"])
def test_urls_that_would_expose_the_token_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="server URL"):
        check_url(url)


def test_loopback_may_be_plain_http_and_https_anywhere() -> None:
    assert check_url("http://127.0.0.1:8443/") == "http://127.0.0.1:8443"
    assert check_url("http://localhost:1") == "http://localhost:1"
    assert check_url("https://hpo.example.org") == "https://hpo.example.org"


def test_login_writes_the_token_for_its_server_in_a_file_of_mode_0600(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("GRIDHPO_API_TOKEN", raising=False)
    old = tmp_path / "gridhpo" / "client.json"
    old.parent.mkdir()
    old.write_text('{"servers": {}}')
    old.chmod(0o644)  # an older file readable by others is replaced, not reused
    path = save_login("https://a.example.org/", "ghpo_a")
    save_login("https://b.example.org", "ghpo_b")
    assert path == old and path.stat().st_mode & 0o777 == 0o600
    assert api_token("https://a.example.org") == "ghpo_a" and api_token("https://b.example.org/") == "ghpo_b"
    with pytest.raises(ConfigError, match=r"no API token for https://c\.example\.org: set GRIDHPO_API_TOKEN"):
        api_token("https://c.example.org")
    monkeypatch.setenv("GRIDHPO_API_TOKEN", "ghpo_env")
    assert api_token("https://a.example.org") == "ghpo_env"


class _Redirect(http.server.BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        _Redirect.seen.append(self.headers.get("Authorization"))
        self.send_response(302)
        self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/elsewhere")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_redirect_is_not_followed_with_the_token(redirecting: str) -> None:
    _Redirect.seen.clear()
    with pytest.raises(RemoteError, match="answered 302") as err:
        Service(redirecting, "ghpo_secret").tasks()
    assert _Redirect.seen == ["Bearer ghpo_secret"]  # one request: the redirect's target got nothing
    assert "ghpo_secret" not in str(err.value) and "ghpo_secret" not in repr(Service(redirecting, "ghpo_secret"))


def test_an_unreachable_service_is_a_one_line_error() -> None:
    with pytest.raises(RemoteError, match=r"cannot reach the service http://127.0.0.1:1: "):
        Service("http://127.0.0.1:1", "t", timeout=5).tasks()


def test_the_remote_commands_need_no_sqlalchemy(tmp_path: Path) -> None:
    """A light install: importing SQLAlchemy (or FastAPI) fails, the remote commands still run
    as far as the service (here: none listening)."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('sqlalchemy', 'fastapi', 'uvicorn', 'alembic'):\n"
        "            raise ImportError(f'{name} is blocked (light install)')\n"
        "sys.meta_path.insert(0, Block())\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               GRIDHPO_SERVER="http://127.0.0.1:1", GRIDHPO_API_TOKEN="t", GRIDHPO_HOME=str(tmp_path / "home"))
    task = tmp_path / "task.yaml"
    task.write_text("name: light\nsearch_space: {x: {type: float, low: 0, high: 1}}\nevaluation: {command: 'true'}\n")
    for args in (["submit", str(task)], ["status"], ["results", "3"], ["cancel", "3"], ["token", "3"],
                 ["plot", "3", "-o", str(tmp_path / "r.html")]):
        proc = subprocess.run([sys.executable, "-m", "gridhpo.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 1 and proc.stderr.startswith("gridhpo: error: cannot reach the service"), \
            (args, proc.stderr[-2000:])
    assert client.__name__ == "gridhpo.service.client"
