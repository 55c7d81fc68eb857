"""Handing one member's weights to another (population-based training) over both stores: the
copy is made inside the store, pinned past retention until restored exactly, and a late save
of the member's own weights can never take its place."""
from __future__ import annotations

from pathlib import Path

import pytest

from gridhpo.checkpoints import MissingObjectError, ObjectStore
from gridhpo.checkpoints.archive import RefusedCheckpointError
from gridhpo.checkpoints.entry import Entry
from gridhpo.checkpoints.manifest import Manifest, point_prefix

KEY = b"k" * 32


def _save(m: Manifest, work: Path, content: str, point: int, attempt: int = 1) -> Entry:
    ck = work / "checkpoint"
    ck.mkdir(parents=True, exist_ok=True)
    (ck / "state.txt").write_text(content)
    entry = m.save(ck, work, task=4, point=point, attempt=attempt, max_size=1 << 20)
    assert entry is not None
    return entry


def _json(entry: Entry) -> str:
    return entry.key[: -len(".tar")] + ".json"


def _restore(m: Manifest, tmp_path: Path, exact: str | None = None) -> str | None:
    work = tmp_path / "restore"
    work.mkdir(exist_ok=True)
    entry = m.restore(work / "checkpoint", work, exact=exact)
    return (work / "checkpoint" / "state.txt").read_text() if entry else None


def _members(store: ObjectStore, keep: int = 1) -> tuple[Manifest, Manifest]:
    return (Manifest(store, point_prefix(4, "pbt", 1), keep=keep, signing_key=KEY),
            Manifest(store, point_prefix(4, "pbt", 2), keep=keep, signing_key=KEY))


def test_an_adopted_checkpoint_is_restored_exactly_and_survives_later_saves(store: ObjectStore,
                                                                            tmp_path: Path) -> None:
    parent, member = _members(store)
    source = _save(parent, tmp_path / "p", "parent weights at step 8", point=1)
    _save(member, tmp_path / "m", "member weights at step 8", point=2)
    adopted = member.adopt(parent, _json(source), task=4, point=2, attempt=2)
    assert (adopted.sha256, adopted.size, adopted.point, adopted.attempt) == (source.sha256, source.size, 2, 2)
    # the member's old attempt still saves its own weights, twice, after the decision (keep=1)
    _save(member, tmp_path / "m", "member weights, late save", point=2)
    _save(member, tmp_path / "m", "member weights, later save", point=2)
    assert _restore(member, tmp_path, exact=_json(adopted)) == "parent weights at step 8"
    member.unpin(adopted)
    _save(member, tmp_path / "m", "member weights after the exploit", point=2)
    assert _json(adopted) not in member.entry_keys()  # pruned as usual once restored
    assert _restore(parent, tmp_path) == "parent weights at step 8"  # the source is untouched


def test_a_source_that_does_not_verify_is_refused_and_nothing_is_left(store: ObjectStore, tmp_path: Path) -> None:
    parent, member = _members(store)
    source = _save(parent, tmp_path / "p", "parent", point=1)
    forger = Manifest(store, point_prefix(4, "pbt", 1), keep=5, signing_key=b"x" * 32)
    with pytest.raises(RefusedCheckpointError, match="wrong signature"):
        member.adopt(forger, _json(source), task=4, point=2, attempt=1)
    store.delete(source.key)  # retention (or an attacker) removed the archive meanwhile
    with pytest.raises(MissingObjectError):
        member.adopt(parent, _json(source), task=4, point=2, attempt=1)
    assert store.list(member.prefix) == []


def test_an_exact_restore_never_falls_back_to_another_checkpoint(store: ObjectStore, tmp_path: Path) -> None:
    parent, member = _members(store, keep=3)
    source = _save(parent, tmp_path / "p", "parent", point=1)
    _save(member, tmp_path / "m", "own older weights", point=2)
    adopted = member.adopt(parent, _json(source), task=4, point=2, attempt=2)
    store.put_bytes(adopted.key, b"damaged in the store")
    assert _restore(member, tmp_path, exact=_json(adopted)) is None
    assert _restore(member, tmp_path) == "own older weights"  # a plain restore does fall back
