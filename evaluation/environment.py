"""What of the pilot's secrets an evaluation can reach: nothing.

The evaluation's environment is the pilot's minus a complete deny-list (``is_secret``), plus
the attempt's own variables. A deny-list, not an allow-list, because evaluations on HPC sites
need whatever the site's modules set (``LD_LIBRARY_PATH``, ``CUDA_*``, ``OMP_*``, conda's...);
what is denied is every kind of secret a pilot can hold:

- the variables gridhpo reads secrets from (``GRIDHPO_TOKEN``, ``GRIDHPO_BROKER``, ``GRIDHPO_DB``,
  ``GRIDHPO_STORE``, ``GRIDHPO_SIGNING_KEY``), every ``AWS_*`` variable (the store's
  credentials, profile and endpoint) and libpq's ``PGPASSWORD``;
- any variable whose value holds a URL with a password (``scheme://user:password@host``) or a
  secret query parameter (``?password=``, ``&aws_secret_access_key=``..., see ``config.redact``),
  whatever its name (``DATABASE_URL``, ``AMQP_URL``);
- any variable whose value holds a secret the pilot learnt (``register_secret``): the task's
  token, the checkpoint signing key read from ``evaluation.checkpoint.signing_key: env:NAME``,
  the password of the broker and store URLs.

A child can also read its parent's ``/proc/<pid>/environ`` and ``mem``: ``make_undumpable``
closes those (see there). ``/proc/<pid>/cmdline`` stays world-readable, so no secret may be on
a pilot's command line: the launchers of gridhpo pass them in the environment or in a 0600 file
(``write_env_file``, read by ``gridhpo pilot --env-file``).
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gridhpo import config
from gridhpo.errors import ConfigError

log = logging.getLogger(__name__)

SECRET_NAMES = frozenset({"GRIDHPO_TOKEN", "GRIDHPO_BROKER", "GRIDHPO_DB", "GRIDHPO_STORE",
                          "GRIDHPO_SIGNING_KEY", "PGPASSWORD"})
SECRET_PREFIXES = ("AWS_",)
_MIN_CONTAINED = 8  # a registered secret this long is searched for inside values; shorter ones must match whole
_secrets: set[str] = set()


def register_secret(value: str | bytes | None) -> None:
    """``value`` is a secret of this pilot: no variable holding it reaches an evaluation."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value:
        _secrets.add(value)


def register_url(url: str | None) -> None:
    """The password and secret query parameters of ``url`` are secrets of this pilot."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        register_secret(unquote(password))


def is_secret(name: str, value: str) -> bool:
    if name in SECRET_NAMES or name.startswith(SECRET_PREFIXES):
        return True
    if "://" in value and config.redact(value) != value:
        return True
    return any(s == value or (len(s) >= _MIN_CONTAINED and s in value) for s in _secrets)


def scrubbed(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without its secrets."""
    return {k: v for k, v in environ.items() if not is_secret(k, v)}


def secret_part(environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets of ``environ``: what a launcher must hand to a pilot off its command line."""
    return {k: v for k, v in environ.items() if is_secret(k, v)}


def evaluation_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of an evaluation: the pilot's without its secrets, the pilot's own
    interpreter first on PATH, and ``extra`` (the attempt's variables and the task's
    ``evaluation.env``, which the task's author chose)."""
    env = scrubbed(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def write_env_file(path: Path, variables: Mapping[str, str]) -> None:
    """``variables`` as ``NAME=VALUE`` lines in ``path``, created 0600 (never readable by others,
    not even for a moment)."""
    for name, value in variables.items():
        if "\n" in value or "=" in name or "\n" in name:
            raise ConfigError(f"{path}: variable {name!r} cannot be written on one line")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in variables.items()))


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME=VALUE`` lines of ``path`` (empty lines and ``#`` comments skipped)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--env-file {path}: {exc.strerror}") from None
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"--env-file {path} line {n}: not NAME=VALUE")
        out[name] = value
    return out


def read_token_file(path: Path) -> str:
    """The token in ``path`` (its first line, without surrounding blanks)."""
    try:
        lines = path.read_text().strip().splitlines()
    except OSError as exc:
        raise ConfigError(f"--token-file {path}: {exc.strerror}") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"--token-file {path}: the file is empty; it must hold the task's token")
    return lines[0].strip()


PR_SET_DUMPABLE = 4  # linux/prctl.h


def make_undumpable() -> bool:
    """Make this process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``), so that other processes of
    the same user — its evaluations — can no longer read its ``/proc/<pid>/environ``, ``mem``,
    ``maps``, ``smaps``, ``auxv``, ``stack``, the links of ``fd/``, ``cwd``, ``exe`` nor ptrace
    it (the kernel's ptrace access check fails and the entries belong to root). ``cmdline``,
    ``stat``, ``status`` and ``comm`` stay readable by everyone: they must hold no secret.
    Children get their own dumpable flag back at ``execve``. Also no core dumps of this process,
    and no ``py-spy``/``gdb`` by the same user. False where there is no prctl (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_DUMPABLE, 0) failed: %s", os.strerror(ctypes.get_errno()))
            return False
    except (OSError, AttributeError) as exc:
        log.warning("prctl unavailable (%s): evaluations may read this process's /proc entries", exc)
        return False
    return True
