"""``gridhpo admin``: the service's users and API tokens, on the server's machine, against
the bookkeeping (--db / GRIDHPO_DB)."""
from __future__ import annotations

import time
from typing import Any

import click

from gridhpo.cli.options import db_option


def _accounts(db: str | None) -> Any:
    from gridhpo.bookkeeping import Repository
    from gridhpo.service.accounts import Accounts

    return Accounts(Repository(db))


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


@click.group()
def admin() -> None:
    """Administration of a shared installation: the service's users and API tokens (`gridhpo server`), and
    per-task broker users."""


@admin.group()
def user() -> None:
    """Add, list, disable and enable users."""


@user.command("add")
@click.argument("name")
@click.option("--admin", "is_admin", is_flag=True, help="The user sees and acts on every task.")
@db_option
def user_add(name: str, is_admin: bool, db: str | None) -> None:
    """Add user NAME; then give them a token: `gridhpo admin token create NAME`."""
    row = _accounts(db).add_user(name, is_admin)
    click.echo(f"user {row.name!r} added" + (" (admin)" if row.admin else ""))


@user.command("list")
@db_option
def user_list(db: str | None) -> None:
    """Every user, with whether they are an admin, their live tokens and when they were disabled."""
    from gridhpo.steering.tables import render_table

    accounts = _accounts(db)
    now = time.time()
    live: dict[str, int] = {}
    for t in accounts.tokens():
        if t.revoked_at is None and (t.expires_at is None or t.expires_at > now):
            live[t.user] = live.get(t.user, 0) + 1
    rows = [[u.name, "yes" if u.admin else "", live.get(u.name, 0), _when(u.created_at),
             "" if u.disabled_at is None else _when(u.disabled_at)] for u in accounts.users()]
    click.echo(render_table(["name", "admin", "tokens", "created", "disabled"], rows) if rows else "no users yet")


@user.command("disable")
@click.argument("name")
@click.option("--cancel-tasks", is_flag=True, help="Also cancel their active tasks (else they run to their end).")
@db_option
def user_disable(name: str, cancel_tasks: bool, db: str | None) -> None:
    """Disable user NAME: their API tokens stop working at once and no new one is made. Their
    tasks stay theirs, readable by admins; active ones keep running (their pilots hold the
    tasks' own pilot tokens) unless --cancel-tasks."""
    accounts = _accounts(db)
    revoked, active = accounts.disable(name)
    click.echo(f"user {name!r} disabled: {revoked} token(s) revoked")
    for task in active:
        if cancel_tasks:
            accounts.repo.set_task_state(task.id, "cancelled", f"cancelled: its user {name!r} was disabled")
        click.echo(f"task {task.name!r} (id {task.id}) " + ("cancelled" if cancel_tasks else "is still active"))


@user.command("enable")
@click.argument("name")
@db_option
def user_enable(name: str, db: str | None) -> None:
    """Enable user NAME again; their old tokens stay revoked: give a new one (`token create`)."""
    _accounts(db).enable(name)
    click.echo(f"user {name!r} enabled; `gridhpo admin token create {name}` gives them a token")


@admin.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.argument("name")
@click.option("--expires", default="90d", show_default=True, metavar="DURATION",
              help="The token stops working after this long (e.g. 12h, 30d); 'never' for no expiry.")
@db_option
def token_create(name: str, expires: str, db: str | None) -> None:
    """A new API token for user NAME, printed once (only its digest is kept)."""
    from gridhpo.steering.taskfile import parse_duration

    seconds = None if expires == "never" else parse_duration(expires, "--expires")
    token_id, text = _accounts(db).create_token(name, seconds)
    click.echo(f"token {token_id} of {name!r}" + (f", expires {_when(time.time() + seconds)}" if seconds else "")
               + "; it is shown only now", err=True)
    click.echo(text)


@token.command("list")
@click.argument("name", required=False)
@db_option
def token_list(name: str | None, db: str | None) -> None:
    """Every token (of user NAME): id, user, created, expires, revoked."""
    from gridhpo.steering.tables import render_table

    rows = [[t.id, t.user, _when(t.created_at), _when(t.expires_at), _when(t.revoked_at)]
            for t in _accounts(db).tokens(name)]
    click.echo(render_table(["id", "user", "created", "expires", "revoked"], rows) if rows else "no tokens")


@token.command("revoke")
@click.argument("token_id", type=int, required=False)
@click.option("--user", "name", default=None, help="Revoke every token of this user.")
@db_option
def token_revoke(token_id: int | None, name: str | None, db: str | None) -> None:
    """Revoke token TOKEN_ID (see `token list`), or every token of --user NAME; at once."""
    if (token_id is None) == (name is None):
        raise click.UsageError("give a TOKEN_ID or --user NAME (exactly one)")
    count = _accounts(db).revoke(token_id, name)
    click.echo(f"{count} token(s) revoked")


admin.add_command(__import__("gridhpo.cli.broker_admin", fromlist=["broker"]).broker)
