"""What of the pilot's environment reaches an evaluation (gridhpo.evaluation.environment)."""
from __future__ import annotations

from pathlib import Path

import pytest

from gridhpo.errors import ConfigError
from gridhpo.evaluation import environment
from gridhpo.evaluation.environment import is_secret, read_env_file, read_token_file, scrubbed, write_env_file


@pytest.mark.parametrize("name, value", [
    ("GRIDHPO_TOKEN", "t"), ("GRIDHPO_BROKER", "filesystem:///q"), ("GRIDHPO_DB", "sqlite:///x"),
    ("GRIDHPO_STORE", "file:///s"), ("GRIDHPO_SIGNING_KEY", "k"), ("PGPASSWORD", "p"),
    ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_ACCESS_KEY_ID", "a"), ("AWS_SESSION_TOKEN", "t"), ("AWS_PROFILE", "p"),
    ("DATABASE_URL", "postgresql://app:pw@db/app"), ("AMQP_URL", "amqp://u:p@mq//"),
    ("ENDPOINT", "https://s3.site/b?aws_secret_access_key=xyz"), ("BACKUP", "s3://KEY:SECRET@bucket/prefix"),
])
def test_secrets_are_denied_by_name_or_by_value(name: str, value: str) -> None:
    assert is_secret(name, value)


@pytest.mark.parametrize("name, value", [
    ("PATH", "/usr/bin"), ("LD_LIBRARY_PATH", "/opt/cuda/lib64"), ("CUDA_VISIBLE_DEVICES", "0"),
    ("GRIDHPO_HOME", "/home/u/.gridhpo"), ("PROXY", "http://proxy.site:3128"), ("OMP_NUM_THREADS", "4"),
])
def test_the_rest_passes(name: str, value: str) -> None:
    assert not is_secret(name, value)


def test_a_registered_secret_is_denied_under_any_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "_secrets", set())
    env = {"TEAM_KEY": "0123456789abcdef", "WRAPPED": "prefix-0123456789abcdef", "SHORT": "guest", "USER": "guest2"}
    assert scrubbed(env) == env
    environment.register_secret(b"0123456789abcdef")
    environment.register_url("amqp://guest:guest@mq//")
    # a short secret is denied only where it is the whole value
    assert scrubbed(env) == {"USER": "guest2"}


def test_env_files_are_0600_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "p.env"
    write_env_file(path, {"GRIDHPO_TOKEN": "abc", "GRIDHPO_BROKER": "amqp://u:p=q@mq//"})
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_env_file(path) == {"GRIDHPO_TOKEN": "abc", "GRIDHPO_BROKER": "amqp://u:p=q@mq//"}
    path.write_text("# comment\n\nnot a variable\n")
    with pytest.raises(ConfigError, match=r"--env-file .*p.env line 3: not NAME=VALUE"):
        read_env_file(path)
    with pytest.raises(ConfigError, match="cannot be written on one line"):
        write_env_file(path, {"X": "two\nlines"})


def test_token_files(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("  tok-123 \n")
    assert read_token_file(tmp_path / "t") == "tok-123"
    (tmp_path / "t").write_text("\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        read_token_file(tmp_path / "t")
    with pytest.raises(ConfigError, match="No such file"):
        read_token_file(tmp_path / "missing")
