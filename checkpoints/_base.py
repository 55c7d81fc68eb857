"""The object-store interface checkpoints are kept in."""
from __future__ import annotations

import abc
import hashlib
import os
import tempfile
from pathlib import Path

from gridhpo.errors import CheckpointError


class MissingObjectError(CheckpointError):
    """``get`` of a key the store does not hold."""


class RefusedCheckpointError(CheckpointError):
    """A checkpoint that does not verify: bad signature, size or checksum, unsafe or unreadable archive.

    Always the stored content's fault, never the evaluation's: a restore passes over it to the
    previous checkpoint (or starts afresh) and reports why."""


class CorruptObjectError(RefusedCheckpointError):
    """A stored object that cannot be what was stored: not a regular file, or larger than expected."""


class ObjectStore(abc.ABC):
    """A flat namespace of immutable objects under one base URL.

    Contract, checked for every backend by tests/unit/test_store_contract.py:

    - keys are relative, ``/``-separated paths without ``..``, empty parts or a leading ``/``
      (``check_key`` enforces it); a backend maps them below its base location;
    - ``put(key, path)`` stores the file's bytes under ``key``, replacing an older object; the
      object is visible (``list``, ``get``) only once it is complete: a reader never sees a
      half-written object, an interrupted ``put`` leaves the old object or none;
    - ``get(key, path, max_bytes)`` writes the object's bytes to ``path`` and raises
      ``MissingObjectError`` when there is none; it reads at most ``max_bytes`` from the store
      and raises ``CorruptObjectError`` for an object larger than that, and for one that is
      not a regular file (a folder store's symbolic link, FIFO or folder), without blocking;
    - ``list(prefix)`` returns the sorted keys starting with ``prefix`` (a plain string prefix);
    - ``delete(key)`` removes an object; deleting a missing key is not an error;
    - ``copy(src, dst, max_bytes)`` makes ``dst`` a byte-identical copy of ``src`` (inside the
      store, server-side where the store can), visible only once complete; it raises
      ``MissingObjectError`` for a missing ``src`` and ``CorruptObjectError`` for one that is
      not a regular file or holds more than ``max_bytes``, writing nothing then. Population-
      based training copies a member's checkpoint for another this way;
    - every failure of the underlying driver is raised as ``CheckpointError`` naming the
      store and the key.
    """

    url: str

    @abc.abstractmethod
    def put(self, key: str, path: Path) -> None: ...

    @abc.abstractmethod
    def get(self, key: str, path: Path, max_bytes: int | None = None) -> None: ...

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    def copy(self, src: str, dst: str, max_bytes: int | None = None) -> None:
        """Through a local temporary file; backends that can copy inside the store override it."""
        fd, tmp = tempfile.mkstemp(prefix="gridhpo-copy-")
        os.close(fd)
        try:
            self.get(src, Path(tmp), max_bytes)
            self.put(dst, Path(tmp))
        finally:
            os.unlink(tmp)

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""

    # small objects (manifest entries) go through a temporary file so that backends
    # implement a single streaming path
    def put_bytes(self, key: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix="gridhpo-put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self.put(key, Path(tmp))
        finally:
            os.unlink(tmp)

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        fd, tmp = tempfile.mkstemp(prefix="gridhpo-get-")
        os.close(fd)
        try:
            self.get(key, Path(tmp), max_bytes)
            return Path(tmp).read_bytes()
        finally:
            os.unlink(tmp)


def too_large(url: str, key: str, max_bytes: int) -> CorruptObjectError:
    return CorruptObjectError(f"store {url}: object {key} holds more than the {max_bytes} bytes expected")


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise CheckpointError(f"object key {key!r} is not a relative path of non-empty parts without '..'")
    return key


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
