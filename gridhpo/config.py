"""Where things live: the home folder and the URLs of the bookkeeping, the queue and the store.

Each is chosen by a command-line option, else an environment variable, else an embedded
default under ``GRIDHPO_HOME`` (``~/.gridhpo``) that needs no server.
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    path = Path(os.environ.get("GRIDHPO_HOME") or Path.home() / ".gridhpo").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("GRIDHPO_DB") or f"sqlite:///{home() / 'gridhpo.db'}"


def broker_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("GRIDHPO_BROKER") or f"filesystem://{home() / 'queue'}"


def store_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("GRIDHPO_STORE") or f"file://{home() / 'store'}"


def redact(url: str) -> str:
    """A URL with its password replaced, fit for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
