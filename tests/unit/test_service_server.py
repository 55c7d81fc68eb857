"""``gridhpo server``'s refusals before it listens."""
from __future__ import annotations

from pathlib import Path

import pytest

from gridhpo.errors import ConfigError
from gridhpo.service.server import ServerOptions, check, is_loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "hpo.example.org"])
def test_plain_http_beyond_this_machine_is_refused_unless_insecure(host: str) -> None:
    with pytest.raises(ConfigError, match="plain HTTP beyond this machine"):
        check(ServerOptions(host=host))
    check(ServerOptions(host=host, insecure=True))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
def test_loopback_may_serve_plain_http(host: str) -> None:
    assert is_loopback(host)
    check(ServerOptions(host=host))


def test_https_needs_both_files_and_they_must_exist(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="--certfile and --keyfile go together"):
        check(ServerOptions(host="0.0.0.0", certfile=cert))
    with pytest.raises(ConfigError, match=r"key\.pem: no such file"):
        check(ServerOptions(host="0.0.0.0", certfile=cert, keyfile=tmp_path / "key.pem"))
