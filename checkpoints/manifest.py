"""The checkpoints of one point in a store: manifest entries, retention, verified restore.

Layout under ``<task-id>-<task-name>/point-<number>/`` in the store: each checkpoint is an
archive ``<sequence>-a<attempt>.tar`` and its manifest entry ``<sequence>-a<attempt>.json``
(point, attempt, sequence, size, sha256, time, key, and an HMAC-SHA256 signature when the
task sets a signing key). The entry is written after its archive, so a listed entry always
names a complete upload; one object per entry means two writers never lose each other's
entries as a shared manifest file would. Only the newest ``keep`` checkpoints stay.

Restoring trusts nothing read from the store: it takes the newest entry whose signature
(when signing is on), size and checksum verify and whose archive unpacks safely, and falls
back to the previous one with a warning for each that does not.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gridhpo.checkpoints._base import MissingObjectError, ObjectStore, sha256_file
from gridhpo.checkpoints.archive import RefusedCheckpointError, archive_limit, pack
from gridhpo.checkpoints.extract import DEFAULT_MAX_SIZE, unpack
from gridhpo.errors import CheckpointError

log = logging.getLogger(__name__)
_ENTRY = re.compile(r"(\d{8})-a(\d+)\.json$")
_MAX_ENTRY = 64 << 10  # an entry is ~300 bytes; a larger object is not one


@dataclass(frozen=True)
class Entry:
    task: int
    point: int
    attempt: int
    sequence: int
    size: int
    sha256: str
    time: float
    key: str
    signature: str | None = None

    def payload(self) -> bytes:
        fields = asdict(self)
        fields.pop("signature")
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def event_data(self) -> dict[str, Any]:
        """What a ``checkpoint`` event reports about it."""
        return {"key": self.key, "size": self.size, "sha256": self.sha256, "sequence": self.sequence,
                "attempt": self.attempt, "time": self.time}


def point_prefix(task_id: int, task_name: str, number: int) -> str:
    return f"{task_id}-{task_name}/point-{number}/"


def _sign(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


class Manifest:
    def __init__(self, store: ObjectStore, prefix: str, *, keep: int = 3, signing_key: bytes | None = None) -> None:
        if keep < 1:
            raise CheckpointError(f"keep must be at least 1, got {keep}")
        self.store = store
        self.prefix = prefix
        self.keep = keep
        self.signing_key = signing_key

    # ------------------------------------------------------------------ reading

    def entry_keys(self) -> list[str]:
        """Entry object keys, oldest first."""
        keys = [k for k in self.store.list(self.prefix) if _ENTRY.search(k)]
        return sorted(keys, key=lambda k: tuple(int(g) for g in _ENTRY.search(k).groups()))  # type: ignore[union-attr]

    def read_entry(self, key: str) -> Entry:
        """An entry as stored; RefusedCheckpointError if malformed or its signature does not verify."""
        try:
            raw = json.loads(self.store.get_bytes(key, max_bytes=_MAX_ENTRY))
            entry = Entry(**{f: raw[f] for f in ("task", "point", "attempt", "sequence", "size", "sha256",
                                                 "time", "key")}, signature=raw.get("signature"))
        except MissingObjectError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise RefusedCheckpointError(f"manifest entry {key} is malformed: {exc}") from exc
        if not entry.key.startswith(self.prefix) or entry.key != key[: -len(".json")] + ".tar":
            raise RefusedCheckpointError(f"manifest entry {key} names archive {entry.key!r}, not its own")
        if self.signing_key is not None:
            if not entry.signature:
                raise RefusedCheckpointError(f"manifest entry {key} is unsigned and the task requires signatures")
            if not hmac.compare_digest(entry.signature, _sign(self.signing_key, entry.payload())):
                raise RefusedCheckpointError(f"manifest entry {key} has a wrong signature")
        return entry

    def entries(self) -> list[Entry]:
        """Entries that read and verify, oldest first; the others are skipped with a warning."""
        out = []
        for key in self.entry_keys():
            try:
                out.append(self.read_entry(key))
            except MissingObjectError:
                continue  # deleted by retention in between
            except RefusedCheckpointError as exc:
                log.warning("checkpoint skipped: %s", exc)
        return out

    # ------------------------------------------------------------------ writing

    def save(self, folder: Path, workspace: Path, *, task: int, point: int, attempt: int, max_size: int,
             unchanged: Callable[[], bool] | None = None) -> Entry | None:
        """Archive ``folder``, upload it and its entry, prune old ones; returns the new entry.

        ``unchanged()``, called once the archive is made, may veto the upload (None returned):
        the pilot uses it to skip an archive of a folder the evaluation was writing to.
        """
        keys = self.entry_keys()
        last = int(_ENTRY.search(keys[-1]).group(1)) if keys else 0  # type: ignore[union-attr]
        sequence = last + 1
        base = f"{self.prefix}{sequence:08d}-a{attempt}"
        tmp = workspace / f".upload-{sequence:08d}.tar"
        try:
            size = pack(folder, tmp, max_size, what=f"checkpoint/ of point {point}")
            if unchanged is not None and not unchanged():
                return None
            digest = sha256_file(tmp)
            self.store.put(f"{base}.tar", tmp)
        finally:
            tmp.unlink(missing_ok=True)
        entry = Entry(task, point, attempt, sequence, size, digest, time.time(), f"{base}.tar")
        if self.signing_key is not None:
            entry = Entry(**{**asdict(entry), "signature": _sign(self.signing_key, entry.payload())})
        self.store.put_bytes(f"{base}.json", json.dumps(asdict(entry), indent=1).encode())
        self.prune()
        return entry

    def prune(self) -> None:
        """Keep the newest ``keep`` checkpoints; also drop archives whose upload never got an entry."""
        keys = self.entry_keys()
        drop = keys[: max(0, len(keys) - self.keep)]
        for key in drop:
            # the entry goes first: an entry never names a deleted archive
            self.store.delete(key)
            self.store.delete(key[: -len(".json")] + ".tar")
        if keys[len(drop):]:
            oldest_kept = keys[len(drop)][: -len(".json")] + ".tar"
            entries = set(keys)
            for k in self.store.list(self.prefix):
                if k.endswith(".tar") and k < oldest_kept and k[: -len(".tar")] + ".json" not in entries:
                    self.store.delete(k)

    # ------------------------------------------------------------------ restoring

    def fetch(self, entry: Entry, dest: Path, max_size: int = DEFAULT_MAX_SIZE) -> None:
        """Download an entry's archive to ``dest``, checking its size and checksum; reads at most
        the entry's size, and nothing for an entry larger than ``max_size`` allows."""
        if entry.size > archive_limit(max_size):
            raise RefusedCheckpointError(
                f"checkpoint {entry.key}: manifest says {entry.size} bytes, over the {archive_limit(max_size)} "
                f"an archive within evaluation.checkpoint.max_size ({max_size}) can hold")
        self.store.get(entry.key, dest, max_bytes=entry.size)
        size = dest.stat().st_size
        if size != entry.size:
            raise RefusedCheckpointError(f"checkpoint {entry.key}: {size} bytes, manifest says {entry.size}")
        digest = sha256_file(dest)
        if digest != entry.sha256:
            raise RefusedCheckpointError(f"checkpoint {entry.key}: checksum mismatch (sha256 {digest[:12]}…, "
                                         f"manifest says {entry.sha256[:12]}…)")

    def restore(self, dest: Path, workspace: Path, on_skip: Callable[[str, str], None] | None = None,
                max_size: int = DEFAULT_MAX_SIZE) -> Entry | None:
        """Restore the newest checkpoint that verifies into ``dest``; None if there is none.

        ``on_skip(key, reason)`` is told about each checkpoint passed over. ``max_size``
        bounds what is downloaded and written. A store that cannot be reached raises
        CheckpointError: starting afresh would throw work away; a store whose content is
        wrong (CorruptObjectError included) is the checkpoint's fault and only skips it.
        """
        tmp = workspace / ".restore.tar"
        for key in reversed(self.entry_keys()):
            try:
                entry = self.read_entry(key)
                self.fetch(entry, tmp, max_size)
                unpack(tmp, dest, source=f"checkpoint {entry.key}", max_size=max_size)
            except (RefusedCheckpointError, MissingObjectError) as exc:
                log.warning("checkpoint %s refused, falling back to the previous one: %s", key, exc)
                if on_skip is not None:
                    on_skip(key, str(exc))
                continue
            finally:
                tmp.unlink(missing_ok=True)
            return entry
        return None
