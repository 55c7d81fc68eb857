"""Where things live: the home folder and the URLs of the bookkeeping, the queue and the store.

Each is chosen by a command-line option, else an environment variable, else an embedded
default under ``GRIDHPO_HOME`` (``~/.gridhpo``) that needs no server.
"""
from __future__ import annotations

import os
import re
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


# a query parameter whose name says it holds a secret: ?password=, &aws_secret_access_key=,
# &X-Amz-Signature=, &token=, &sslkey=...
_SECRET_PARAM = re.compile(r"([?&;][^=&;#]*(?:pass|pwd|secret|token|key|auth|credential|signature)[^=&;#]*=)[^&;#]*",
                           re.IGNORECASE)

# a URL given as a query parameter (?endpoint=http://user:password@host)
_NESTED_USERINFO = re.compile(r"(://[^:/?#@&;\s]*:)[^@/?#&;\s]*@")


def redact(url: str) -> str:
    """A URL with every secret in it replaced by ``***``, fit for logs and error messages: the
    password of its user part (``scheme://user:***@host``) and the value of any query parameter
    whose name says it holds one. The one place URLs are redacted; it works on text that is not
    a well-formed URL too, as an error about a bad URL must hide its secrets as well."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    head, tail = url[:cut], _SECRET_PARAM.sub(r"\1***", _NESTED_USERINFO.sub(r"\1***@", url[cut:]))
    scheme, sep, rest = head.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        if ":" in creds:
            head = f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return head + tail
