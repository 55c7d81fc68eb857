"""Per-task tokens: what a pilot presents to get a task's points and to report on them.

A token is created at submit, can be replaced (``gridhpo token TASK --revoke``) and can
expire. A task's point queue is named after a digest of its token, so a pilot without the
token does not know where its points are. Events never carry the token, only a code computed
with it (protocol/auth.py); the steering sets aside (dead-letter queue) the events whose code
matches no current token of their task: a wrong, replaced or expired token.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    """43 URL-safe characters, never a leading '-': a user passes the token on command lines
    (``--token T``, the examples' ``--pilot-token T``), where argparse and click read such a token
    as an option (one token in 64 began with '-'). Drawn again rather than edited, so the first
    character stays uniform over the 63 others."""
    while True:
        token = secrets.token_urlsafe(32)[:43]
        if not token.startswith("-"):
            return token


def queue_key(token: str) -> str:
    """The part of a point queue's name derived from the token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:20]


def same(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.encode(), token.encode())
