"""Users, their API tokens and the tasks they own, in the bookkeeping.

An API token is 32 random bytes (256 bits); only the SHA-256 digest of its text is stored.
A slow password hash (bcrypt, argon2) exists to make guessing a low-entropy secret costly;
nobody can enumerate 2**256 candidates however fast each one is, so one fast digest is as
safe here and lets every request be checked with one indexed lookup. The digest is looked up,
then compared with ``hmac.compare_digest`` so that no comparison time depends on the secret.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gridhpo.bookkeeping.models import ApiToken, Task, User
from gridhpo.bookkeeping.repository import Repository, TaskRow
from gridhpo.config import redact
from gridhpo.errors import BookkeepingError, ConfigError, GridHPOError, NotFoundError, unknown_name

T_USER = cast(Table, User.__table__)
T_TOKEN = cast(Table, ApiToken.__table__)
T_TASK = cast(Table, Task.__table__)

TOKEN_PREFIX = "ghpo_"  # recognisable in a leaked file or a secret scanner's rules
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class AuthError(GridHPOError):
    """An API token that is missing, unknown, expired or revoked (HTTP 401)."""


class NameTaken(ConfigError):
    """A task name another task holds (HTTP 409): names are unique across the service, and
    the error says no more about that task (whose it is, its id) than that the name is taken."""


@dataclass(frozen=True)
class UserRow:
    id: int
    name: str
    admin: bool
    created_at: float
    disabled_at: float | None = None


@dataclass(frozen=True)
class TokenRow:
    id: int
    user: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_user_name(name: str) -> None:
    if not _USER_NAME.fullmatch(name):
        raise ConfigError(f"user name {name!r}: letters, digits, '.', '_', '@' or '-', at most 64, "
                          "starting with a letter or digit")


class Accounts:
    """The users and tokens of one bookkeeping."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    @contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        """One transaction; a driver's error becomes a BookkeepingError naming the (redacted)
        bookkeeping and the first line of the error, never the statement's parameters."""
        try:
            with self.repo.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise BookkeepingError(f"bookkeeping {redact(self.repo.url)}: {what} failed: {first}") from exc

    # ------------------------------------------------------------------ users

    def add_user(self, name: str, admin: bool = False) -> UserRow:
        check_user_name(name)
        try:
            with self._tx("add user") as conn:
                now = time.time()
                uid = conn.execute(insert(T_USER).values(name=name, admin=admin, created_at=now)
                                   .returning(T_USER.c.id)).scalar_one()
        except IntegrityError as exc:
            raise ConfigError(f"a user named {name!r} exists already") from exc
        return UserRow(int(uid), name, admin, now)

    def users(self) -> list[UserRow]:
        with self._tx("list users") as conn:
            return [UserRow(r.id, r.name, bool(r.admin), r.created_at, r.disabled_at)
                    for r in conn.execute(select(T_USER).order_by(T_USER.c.id))]

    def user(self, name: str) -> UserRow:
        for u in self.users():
            if u.name == name:
                return u
        raise NotFoundError(str(unknown_name("user", name, [u.name for u in self.users()])).replace(
            "unknown user", "no user", 1))

    def disable(self, name: str) -> tuple[int, list[TaskRow]]:
        """Disable user ``name``: every token of theirs revoked and refused from now on, no new
        one made, in one transaction. Their tasks stay theirs (admins read them). Returns (the
        tokens revoked, their tasks still active)."""
        row = self.user(name)
        now = time.time()
        with self._tx("disable user") as conn:
            conn.execute(update(T_USER).where(T_USER.c.id == row.id, T_USER.c.disabled_at.is_(None))
                         .values(disabled_at=now))
            revoked = conn.execute(update(T_TOKEN).where(T_TOKEN.c.user_id == row.id, T_TOKEN.c.revoked_at.is_(None))
                                   .values(revoked_at=now)).rowcount
        return int(revoked), [t for t in self.tasks(row) if t.state == "active"]

    def enable(self, name: str) -> None:
        """Lift ``disable``. Every token made before the disable stays revoked (revoked again,
        should one have come back, e.g. with a restored backup): `gridhpo admin token create`."""
        row = self.user(name)
        with self._tx("enable user") as conn:
            if row.disabled_at is not None:
                conn.execute(update(T_TOKEN).where(T_TOKEN.c.user_id == row.id, T_TOKEN.c.revoked_at.is_(None),
                                                   T_TOKEN.c.created_at <= row.disabled_at)
                             .values(revoked_at=time.time()))
            conn.execute(update(T_USER).where(T_USER.c.id == row.id).values(disabled_at=None))

    # ------------------------------------------------------------------ tokens

    def create_token(self, user: str, expires_in: float | None = None) -> tuple[int, str]:
        """A new token of ``user``: (its id, its text). The text is shown once and never stored."""
        row = self.user(user)
        if row.disabled_at is not None:
            raise ConfigError(f"user {user!r} is disabled: `gridhpo admin user enable {user}` first")
        text = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with self._tx("create token") as conn:
            tid = conn.execute(insert(T_TOKEN).values(
                user_id=row.id, digest=digest(text), created_at=now,
                expires_at=None if expires_in is None else now + expires_in).returning(T_TOKEN.c.id)).scalar_one()
        return int(tid), text

    def tokens(self, user: str | None = None) -> list[TokenRow]:
        q = (select(T_TOKEN, T_USER.c.name).join(T_USER, T_USER.c.id == T_TOKEN.c.user_id).order_by(T_TOKEN.c.id))
        if user is not None:
            q = q.where(T_USER.c.id == self.user(user).id)
        with self._tx("list tokens") as conn:
            return [TokenRow(r.id, r.name, r.created_at, r.expires_at, r.revoked_at) for r in conn.execute(q)]

    def revoke(self, token_id: int | None = None, user: str | None = None) -> int:
        """Revoke one token by id, or every token of ``user``; returns how many were revoked."""
        q = update(T_TOKEN).where(T_TOKEN.c.revoked_at.is_(None)).values(revoked_at=time.time())
        if token_id is not None:
            if token_id not in {t.id for t in self.tokens()}:
                raise NotFoundError(f"no API token with id {token_id} (`gridhpo admin token list`)")
            q = q.where(T_TOKEN.c.id == token_id)
        elif user is not None:
            q = q.where(T_TOKEN.c.user_id == self.user(user).id)
        else:
            raise ConfigError("name a token id or a user")
        with self._tx("revoke token") as conn:
            return int(conn.execute(q).rowcount)

    def authenticate(self, token: str, now: float | None = None) -> UserRow:
        """The user a presented token belongs to; AuthError when it is not a live token."""
        wanted = digest(token)
        with self._tx("check token") as conn:
            r = conn.execute(select(T_TOKEN, T_USER.c.name, T_USER.c.admin, T_USER.c.created_at.label("since"),
                                    T_USER.c.disabled_at)
                             .join(T_USER, T_USER.c.id == T_TOKEN.c.user_id)
                             .where(T_TOKEN.c.digest == wanted)).first()
        if r is None or not hmac.compare_digest(r.digest, wanted):
            raise AuthError("the API token is not valid")
        now = time.time() if now is None else now
        if r.revoked_at is not None:
            raise AuthError("the API token was revoked")
        if r.disabled_at is not None:  # its tokens were revoked as it was disabled: this is a second lock
            raise AuthError("the API token's user is disabled")
        if r.expires_at is not None and r.expires_at <= now:
            raise AuthError("the API token has expired")
        return UserRow(r.user_id, r.name, bool(r.admin), r.since)

    # ------------------------------------------------------------------ tasks

    def create_task(self, owner: UserRow, name: str, spec: dict[str, Any], token: str) -> int:
        """A new active task owned by ``owner``, in one transaction (owner and all)."""
        try:
            with self._tx("create task") as conn:
                return int(conn.execute(insert(T_TASK).values(
                    name=name, spec=spec, state="active", created_at=time.time(), token=token, owner=owner.id)
                    .returning(T_TASK.c.id)).scalar_one())
        except IntegrityError as exc:
            raise NameTaken(f"a task named {name!r} exists already; choose another name") from exc

    def visible_ids(self, user: UserRow) -> list[int] | None:
        """The ids of the tasks ``user`` may see; None: every task (an admin)."""
        if user.admin:
            return None
        with self._tx("list own tasks") as conn:
            return [int(r[0]) for r in conn.execute(select(T_TASK.c.id).where(T_TASK.c.owner == user.id))]

    def tasks(self, user: UserRow) -> list[TaskRow]:
        visible = self.visible_ids(user)
        rows = self.repo.tasks()
        return rows if visible is None else [t for t in rows if t.id in set(visible)]

    def task(self, user: UserRow, task_id: int) -> TaskRow:
        """A task ``user`` may see. Another user's task is reported missing, exactly as a task
        that does not exist, so that ids cannot be probed."""
        with self._tx("read task owner") as conn:
            q = select(T_TASK.c.id).where(T_TASK.c.id == task_id)
            if not user.admin:
                q = q.where(T_TASK.c.owner == user.id)
            found = conn.execute(q).first()
        if found is None:
            raise NotFoundError(f"no task {task_id}")
        return self.repo.task(task_id)
