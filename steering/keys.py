"""The steering's verifying key as pilots are given it (``TOKEN.KEY``): the key of the steering
that signs, as recorded in the bookkeeping when it took the lock (bookkeeping/steering_key.py),
wherever the token is asked for."""
from __future__ import annotations

import logging

from gridhpo.bookkeeping.repository import Repository
from gridhpo.bookkeeping.steering_key import record_steering_key, steering_key
from gridhpo.protocol.auth import pilot_credential as credential
from gridhpo.protocol.auth import steering_signer

log = logging.getLogger(__name__)


def record(repo: Repository) -> None:
    """The steering that just took the lock: its key is the one that signs from now on."""
    key = steering_signer().public.text()
    record_steering_key(repo, key)
    log.info("steering key %s... recorded in the bookkeeping", key[:8])


def signing_key(repo: Repository) -> str:
    """The verifying key of the steering that signs this bookkeeping's points. Before any
    steering took the lock, this home's: the key the first steering started here will use."""
    found = steering_key(repo)
    if found is None:
        return steering_signer().public.text()
    return found[0]


def pilot_credential(repo: Repository, token: str) -> str:
    """``TOKEN.KEY`` for a task's pilots, with the key of the steering that signs."""
    return credential(token, signing_key(repo))
