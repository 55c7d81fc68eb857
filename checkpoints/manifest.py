"""The checkpoints of one point in a store: manifest entries, retention, verified restore.

Layout under ``<task-id>-<task-name>/point-<number>/`` in the store: each checkpoint is an
archive ``<sequence>-a<attempt>.tar`` and its manifest entry ``<sequence>-a<attempt>.json``
(point, attempt, sequence, size, sha256, time, key, and an HMAC-SHA256 signature when the
task sets a signing key). The entry is written after its archive, so a listed entry always
names a complete upload; one object per entry means two writers never lose each other's
entries as a shared manifest file would. Only the newest ``keep`` checkpoints stay.

Restoring trusts nothing read from the store: it takes the newest entry whose signature
(when signing is on), size and checksum verify and whose archive unpacks safely, and falls
back to the previous one with a warning for each that does not. Entries that do not verify
never count: not for the next sequence number, not for retention (see ``checkpoints/entry.py``
for the entry format and its parser).

Population-based training hands a member another member's weights with ``adopt``: the
source's verified archive is copied inside the store (server-side on S3) into the member's
own manifest as a new, signed entry, and a pin (``pinned-<sequence>``) keeps that entry past
the retention limit until the member has restored exactly it (``restore(..., exact=key)``,
then ``unpin``), so a late save of the member's own weights can neither replace nor prune it.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from gridhpo.checkpoints._base import MissingObjectError, ObjectStore, sha256_file
from gridhpo.checkpoints.archive import RefusedCheckpointError, archive_limit, pack
from gridhpo.checkpoints.entry import MAX_ENTRY_BYTES, MAX_SEQUENCE, Entry, name_of, parse_entry, sign
from gridhpo.checkpoints.extract import DEFAULT_MAX_SIZE, unpack
from gridhpo.errors import CheckpointError

log = logging.getLogger(__name__)

PIN = re.compile(r"pinned-(\d{8})")  # a pin's name after the prefix; group 1 its sequence


def point_prefix(task_id: int, task_name: str, number: int) -> str:
    return f"{task_id}-{task_name}/point-{number}/"


class Manifest:
    def __init__(self, store: ObjectStore, prefix: str, *, keep: int = 3, signing_key: bytes | None = None) -> None:
        if keep < 1:
            raise CheckpointError(f"keep must be at least 1, got {keep}")
        self.store = store
        self.prefix = prefix
        self.keep = keep
        self.signing_key = signing_key

    # ------------------------------------------------------------------ reading

    def entry_keys(self, listing: list[str] | None = None) -> list[str]:
        """Entry object keys, oldest first (by sequence, then attempt)."""
        named = [(n, k) for k in (self.store.list(self.prefix) if listing is None else listing)
                 if (n := name_of(self.prefix, k)) is not None and n[2] == "json"]
        return [k for _, k in sorted(named)]

    def read_entry(self, key: str) -> Entry:
        """An entry as stored; RefusedCheckpointError if malformed or its signature does not verify."""
        name = name_of(self.prefix, key)
        if name is None or name[2] != "json":
            raise RefusedCheckpointError(f"{key} is not a manifest entry of {self.prefix}")
        entry = parse_entry(key, self.store.get_bytes(key, max_bytes=MAX_ENTRY_BYTES), name[0], name[1])
        if entry.key != key[: -len(".json")] + ".tar":
            raise RefusedCheckpointError(f"manifest entry {key} names archive {entry.key!r}, not its own")
        if self.signing_key is not None:
            if not entry.signature:
                raise RefusedCheckpointError(f"manifest entry {key} is unsigned and the task requires signatures")
            if not hmac.compare_digest(entry.signature, sign(self.signing_key, entry.payload())):
                raise RefusedCheckpointError(f"manifest entry {key} has a wrong signature")
        return entry

    def entries(self, listing: list[str] | None = None) -> list[Entry]:
        """Entries that read and verify, oldest first; the others are skipped with a warning."""
        out = []
        for key in self.entry_keys(listing):
            try:
                out.append(self.read_entry(key))
            except MissingObjectError:
                continue  # deleted by retention in between
            except RefusedCheckpointError as exc:
                log.warning("checkpoint skipped: %s", exc)
        return out

    # ------------------------------------------------------------------ writing

    def next_sequence(self, verified: list[Entry], listing: list[str]) -> int:
        """One past the newest verified entry, and past any object named with that sequence.

        Only verified entries count: with signing on, planted unsigned entries numbered near
        99999999 cannot push the next save past the 8-digit names; and no save reuses a
        sequence some object already has, planted or not."""
        taken = {n[0] for k in listing if (n := name_of(self.prefix, k)) is not None}
        sequence = max((e.sequence for e in verified), default=0) + 1
        while sequence in taken:
            sequence += 1
        if sequence > MAX_SEQUENCE:
            raise CheckpointError(f"checkpoints of {self.prefix}: sequence numbers are used up to {MAX_SEQUENCE} "
                                  "by entries that verify (without a signing key, anyone who can write the "
                                  "store can plant them): set evaluation.checkpoint.signing_key")
        return sequence

    def save(self, folder: Path, workspace: Path, *, task: int, point: int, attempt: int, max_size: int,
             unchanged: Callable[[], bool] | None = None) -> Entry | None:
        """Archive ``folder``, upload it and its entry, prune old ones; returns the new entry.

        ``unchanged()``, called once the archive is made, may veto the upload (None returned):
        the pilot uses it to skip an archive of a folder the evaluation was writing to.
        """
        listing = self.store.list(self.prefix)
        verified = self.entries(listing)
        sequence = self.next_sequence(verified, listing)
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
        entry = self._record(Entry(task, point, attempt, sequence, size, digest, time.time(), f"{base}.tar"))
        self._prune([*verified, entry], [*listing, f"{base}.tar", f"{base}.json"])
        return entry

    def _record(self, entry: Entry) -> Entry:
        """Sign (when signing is on) and write ``entry``, after its archive is complete."""
        if self.signing_key is not None:
            entry = Entry(**{**asdict(entry), "signature": sign(self.signing_key, entry.payload())})
        self.store.put_bytes(entry.key[: -len(".tar")] + ".json", json.dumps(asdict(entry), indent=1).encode())
        return entry

    def adopt(self, source: Manifest, key: str, *, task: int, point: int, attempt: int) -> Entry:
        """Copy ``source``'s verified entry ``key`` (and its archive) in as this manifest's newest
        checkpoint, pinned until ``unpin``; raises RefusedCheckpointError if it does not verify
        and MissingObjectError if retention removed it meanwhile (choose another then)."""
        origin = source.read_entry(key)
        listing = self.store.list(self.prefix)
        sequence = self.next_sequence(self.entries(listing), listing)
        base = f"{self.prefix}{sequence:08d}-a{attempt}"
        # the pin goes first: from the moment the entry exists, nothing prunes it
        pin = f"{self.prefix}pinned-{sequence:08d}"
        self.store.put_bytes(pin, key.encode())
        try:
            self.store.copy(origin.key, f"{base}.tar", max_bytes=origin.size)
            return self._record(Entry(task, point, attempt, sequence, origin.size, origin.sha256, time.time(),
                                      f"{base}.tar"))
        except BaseException:
            self.store.delete(f"{base}.tar")
            self.store.delete(pin)
            raise

    def pin(self, entry: Entry) -> None:
        """Keep ``entry`` past the retention limit until ``unpin``: a population member's
        newest segment-end checkpoint, which another member may yet copy."""
        self.store.put_bytes(f"{self.prefix}pinned-{entry.sequence:08d}", entry.key.encode())

    def unpin(self, entry: Entry) -> None:
        """``entry`` was restored: retention may treat it as any other checkpoint again."""
        self.store.delete(f"{self.prefix}pinned-{entry.sequence:08d}")

    def prune(self) -> None:
        """Keep the newest ``keep`` verified checkpoints; also drop older archives that have no entry."""
        listing = self.store.list(self.prefix)
        self._prune(self.entries(listing), listing)

    def _prune(self, verified: list[Entry], listing: list[str]) -> None:
        # only entries that verify count and are deleted: an entry that does not verify (planted,
        # unsigned with signing on) neither pushes a genuine checkpoint out nor is touched
        pinned = {int(m.group(1)) for k in listing
                  if k.startswith(self.prefix) and (m := PIN.fullmatch(k[len(self.prefix):]))}
        verified = sorted(verified, key=lambda e: (e.sequence, e.attempt))
        drop = [e for e in verified[: max(0, len(verified) - self.keep)] if e.sequence not in pinned]
        for e in drop:
            # the entry goes first: an entry never names a deleted archive
            self.store.delete(e.key[: -len(".tar")] + ".json")
            self.store.delete(e.key)
        kept = [e for e in verified if e not in drop]
        if not kept:
            return
        oldest_kept = (kept[0].sequence, kept[0].attempt)
        names = {k: n for k in listing if (n := name_of(self.prefix, k)) is not None}
        with_entry = {(n[0], n[1]) for n in names.values() if n[2] == "json"}
        for k, (seq, att, kind) in names.items():
            if kind == "tar" and (seq, att) < oldest_kept and (seq, att) not in with_entry:
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
                max_size: int = DEFAULT_MAX_SIZE, exact: str | None = None) -> Entry | None:
        """Restore the newest checkpoint that verifies into ``dest``; None if there is none.

        ``on_skip(key, reason)`` is told about each checkpoint passed over. ``max_size``
        bounds what is downloaded and written. A store that cannot be reached raises
        CheckpointError: starting afresh would throw work away; a store whose content is
        wrong (CorruptObjectError included) is the checkpoint's fault and only skips it.
        With ``exact`` (an entry key) only that checkpoint is restored, never another: a
        member told to start from adopted weights must not fall back to its own.
        """
        tmp = workspace / ".restore.tar"
        keys = [exact] if exact is not None else list(reversed(self.entry_keys()))
        for key in keys:
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


__all__ = ["Entry", "Manifest", "point_prefix"]
