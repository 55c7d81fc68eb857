"""Every form of URL secret is hidden in logs and errors, by the one function that redacts URLs."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gridhpo.cli import main
from gridhpo.config import redact


@pytest.mark.parametrize(("url", "shown"), [
    ("amqp://guest:s3cret@h:5672//", "amqp://guest:***@h:5672//"),
    ("amqp://u:pa/ss@host/vh", "amqp://u:***@host/vh"),
    ("postgresql+psycopg://u@h/db?password=s3cret&sslmode=require",
     "postgresql+psycopg://u@h/db?password=***&sslmode=require"),
    ("postgresql://u:s3cret@h/db?sslpassword=s3cret;auth_token=s3cret#f",
     "postgresql://u:***@h/db?sslpassword=***;auth_token=***#f"),
    ("s3://b/p?endpoint=http://k:s3cret@x&aws_secret_access_key=s3cret&region=r",
     "s3://b/p?endpoint=http://k:***@x&aws_secret_access_key=***&region=r"),
    ("https://h/o?X-Amz-Credential=s3cret&X-Amz-Signature=s3cret", "https://h/o?X-Amz-Credential=***&X-Amz-Signature=***"),
    ("filesystem:///tmp/q", "filesystem:///tmp/q"),
    ("sqlite:///tmp/a@b.db", "sqlite:///tmp/a@b.db"),
    ("amqp://guest@h//?email=a@b", "amqp://guest@h//?email=a@b"),
    ("not a url?password=s3cret", "not a url?password=***"),
])
def test_redact_hides_every_form_of_url_secret(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_password_given_as_a_url_parameter_is_never_printed(home: Path) -> None:
    """``?password=`` on the bookkeeping URL was printed in the error of an unreachable server,
    and on the broker URL it made kombu raise a TypeError with a traceback."""
    for args in (["status", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/x?password=hunter2"],
                 ["pilot", "--task", "1", "--token", "t", "--broker", "amqp://guest@127.0.0.1:1//?password=hunter2"],
                 ["status", "--db", "bogus://u@h/x?password=hunter2"]):
        r = CliRunner().invoke(main, args)
        out = r.output
        assert r.exit_code != 0, out
        assert "hunter2" not in out, out
        assert "password=***" in out, out
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
