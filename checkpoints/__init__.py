"""Checkpoints in an object store: backends chosen by URL scheme, archives, manifests.

``open_store("file:///srv/ckpt")`` or ``open_store("s3://bucket/prefix?endpoint=...")``;
an unknown scheme fails with the known ones and close matches.
"""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from gridhpo._layout import one_identity
from gridhpo.checkpoints._base import (
    CorruptObjectError,
    MissingObjectError,
    ObjectStore,
    RefusedCheckpointError,
    check_key,
    sha256_file,
)
from gridhpo.config import redact
from gridhpo.errors import ConfigError, unknown_name


def _local(url: str) -> ObjectStore:
    from gridhpo.checkpoints.local import LocalStore

    return LocalStore(url)


def _s3(url: str) -> ObjectStore:
    from gridhpo.checkpoints.s3 import S3Store

    return S3Store(url)


STORES: dict[str, Callable[[str], ObjectStore]] = {"file": _local, "s3": _s3}


def open_store(url: str) -> ObjectStore:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError(f"store URL {redact(url)!r} has no scheme (file:///path or s3://bucket/prefix)")
    if scheme not in STORES:
        raise unknown_name("store URL scheme", scheme, STORES)
    return STORES[scheme](url)


__all__ = ["STORES", "CorruptObjectError", "MissingObjectError", "ObjectStore", "RefusedCheckpointError", "check_key",
           "open_store", "sha256_file"]


one_identity(__name__)
