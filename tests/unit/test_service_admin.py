"""``gridhpo admin``: users and API tokens on the server's machine."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gridhpo.bookkeeping import Repository
from gridhpo.cli.main import main
from gridhpo.service.accounts import Accounts, AuthError


def admin(db: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["admin", *args, "--db", db])


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'b.db'}"


def test_users_and_their_tokens_from_the_command_line(db: str) -> None:
    assert admin(db, "user", "add", "alice").stdout == "user 'alice' added\n"
    assert admin(db, "user", "add", "root", "--admin").stdout == "user 'root' added (admin)\n"
    again = admin(db, "user", "add", "alice")
    assert again.exit_code == 1 and again.stderr == "gridhpo: error: a user named 'alice' exists already\n"
    bad = admin(db, "user", "add", "al ice")
    assert bad.exit_code == 1 and "user name 'al ice'" in bad.stderr
    created = admin(db, "token", "create", "alice", "--expires", "30d")
    token = created.stdout.strip()
    assert created.exit_code == 0 and token.startswith("ghpo_") and len(token) == 48
    assert "it is shown only now" in created.stderr and token not in created.stderr
    accounts = Accounts(Repository(db))
    assert accounts.authenticate(token).name == "alice"
    typo = admin(db, "token", "create", "alcie")
    assert typo.exit_code == 1 and "did you mean 'alice'" in typo.stderr
    listing = admin(db, "user", "list").stdout.splitlines()
    assert listing[0].split() == ["name", "admin", "tokens", "created", "disabled"]
    assert listing[2].split()[:2] == ["alice", "1"] and listing[3].split()[:3] == ["root", "yes", "0"]
    assert admin(db, "token", "revoke", "1").stdout == "1 token(s) revoked\n"
    with pytest.raises(AuthError, match="revoked"):
        accounts.authenticate(token)
    missing = admin(db, "token", "revoke", "7")
    assert missing.exit_code == 1 and "no API token with id 7" in missing.stderr
    assert admin(db, "token", "revoke").exit_code == 2  # neither an id nor --user


def test_a_token_expires_and_never_means_never(db: str) -> None:
    accounts = Accounts(Repository(db))
    accounts.add_user("alice")
    _, short = accounts.create_token("alice", expires_in=60.0)
    assert accounts.authenticate(short).name == "alice"
    with pytest.raises(AuthError, match="expired"):
        accounts.authenticate(short, now=accounts.tokens()[0].created_at + 61)
    forever = admin(db, "token", "create", "alice", "--expires", "never").stdout.strip()
    assert accounts.authenticate(forever, now=4e9).name == "alice"
    with pytest.raises(AuthError, match="not valid"):
        accounts.authenticate(forever[:-1] + ("A" if forever[-1] != "A" else "B"))
