"""Manifests over both stores: retention, a corrupt newest checkpoint falls back to the
previous one, and with a signing key an unsigned or tampered checkpoint is refused."""
from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path

import pytest

from gridhpo.checkpoints import ObjectStore, sha256_file
from gridhpo.checkpoints.manifest import Manifest, point_prefix
from tests.unit.test_checkpoint_archive import chain_members

PREFIX = point_prefix(4, "demo", 7)


def _save(m: Manifest, work: Path, content: str, attempt: int = 1) -> int:
    ck = work / "checkpoint"
    ck.mkdir(parents=True, exist_ok=True)
    (ck / "state.txt").write_text(content)
    entry = m.save(ck, work, task=4, point=7, attempt=attempt, max_size=1 << 20)
    assert entry is not None
    return entry.sequence


def _restore(m: Manifest, tmp_path: Path) -> tuple[str | None, list[str]]:
    work = tmp_path / "retry"
    work.mkdir(exist_ok=True)
    skipped: list[str] = []
    entry = m.restore(work / "checkpoint", work, on_skip=lambda key, why: skipped.append(why))
    text = (work / "checkpoint" / "state.txt").read_text() if entry else None
    return text, skipped


def test_sequence_retention_and_restore_of_the_newest(store: ObjectStore, tmp_path: Path) -> None:
    m = Manifest(store, PREFIX, keep=2)
    work = tmp_path / "w"
    assert [_save(m, work, f"epoch {i}", attempt=1 + i // 2) for i in range(4)] == [1, 2, 3, 4]
    entries = m.entries()
    assert [(e.sequence, e.attempt) for e in entries] == [(3, 2), (4, 2)]
    assert all(k.startswith(PREFIX) for k in store.list(PREFIX))
    assert len(store.list(PREFIX)) == 4  # two archives and their entries, older ones pruned
    assert _restore(m, tmp_path) == ("epoch 3", [])


def test_no_checkpoint_restores_nothing(store: ObjectStore, tmp_path: Path) -> None:
    assert _restore(Manifest(store, PREFIX), tmp_path) == (None, [])


def test_corrupt_newest_falls_back_to_the_previous_with_a_warning(
        store: ObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    m = Manifest(store, PREFIX, keep=3)
    _save(m, tmp_path / "w", "epoch 1")
    _save(m, tmp_path / "w", "epoch 2")
    newest = m.entries()[-1]
    # same size, different bytes: only the checksum can tell
    bad = tmp_path / "bad.tar"
    store.get(newest.key, bad)
    data = bytearray(bad.read_bytes())
    data[600] ^= 0xFF
    bad.write_bytes(bytes(data))
    store.put(newest.key, bad)
    with caplog.at_level(logging.WARNING, logger="gridhpo.checkpoints.manifest"):
        text, skipped = _restore(m, tmp_path)
    assert text == "epoch 1"
    assert len(skipped) == 1 and "checksum mismatch" in skipped[0]
    assert "falling back to the previous one" in caplog.text


def test_truncated_newest_falls_back(store: ObjectStore, tmp_path: Path) -> None:
    m = Manifest(store, PREFIX)
    _save(m, tmp_path / "w", "epoch 1")
    _save(m, tmp_path / "w", "epoch 2")
    store.put_bytes(m.entries()[-1].key, b"short")
    text, skipped = _restore(m, tmp_path)
    assert text == "epoch 1" and "manifest says" in skipped[0]


def test_signed_checkpoints_restore_with_the_right_key(store: ObjectStore, tmp_path: Path) -> None:
    m = Manifest(store, PREFIX, signing_key=b"s3cret")
    _save(m, tmp_path / "w", "signed")
    assert m.entries()[0].signature
    assert _restore(m, tmp_path) == ("signed", [])
    wrong = Manifest(store, PREFIX, signing_key=b"other key")
    text, skipped = _restore(wrong, tmp_path)
    assert text is None and "wrong signature" in skipped[0]


def test_tampered_signed_checkpoint_is_refused(store: ObjectStore, tmp_path: Path) -> None:
    """Whoever can write the store replaces the newest archive and fixes up its entry's
    size and checksum: without the key the signature no longer matches."""
    m = Manifest(store, PREFIX, signing_key=b"s3cret")
    _save(m, tmp_path / "w", "genuine")
    _save(m, tmp_path / "w", "genuine 2")
    unsigned = Manifest(store, "forged/")
    seq = _save(unsigned, tmp_path / "forge", "malicious")
    forged_tar = tmp_path / "forged.tar"
    unsigned.store.get(f"forged/{seq:08d}-a1.tar", forged_tar)
    newest_key = m.entry_keys()[-1]
    entry = json.loads(store.get_bytes(newest_key))
    entry.update(size=forged_tar.stat().st_size, sha256=sha256_file(forged_tar))
    store.put(entry["key"], forged_tar)
    store.put_bytes(newest_key, json.dumps(entry).encode())
    text, skipped = _restore(m, tmp_path)
    assert text == "genuine"
    assert "wrong signature" in skipped[0]


def test_unsigned_checkpoint_is_refused_when_signing_is_on(store: ObjectStore, tmp_path: Path) -> None:
    _save(Manifest(store, PREFIX), tmp_path / "w", "unsigned")
    text, skipped = _restore(Manifest(store, PREFIX, signing_key=b"s3cret"), tmp_path)
    assert text is None and "unsigned" in skipped[0]


def test_entry_pointing_at_another_archive_is_refused(store: ObjectStore, tmp_path: Path) -> None:
    m = Manifest(store, PREFIX)
    _save(m, tmp_path / "w", "one")
    _save(m, tmp_path / "w", "two")
    keys = m.entry_keys()
    entry = json.loads(store.get_bytes(keys[-1]))
    entry["key"] = json.loads(store.get_bytes(keys[0]))["key"]
    store.put_bytes(keys[-1], json.dumps(entry).encode())
    text, skipped = _restore(m, tmp_path)
    assert text == "one" and "not its own" in skipped[0]


@pytest.mark.parametrize("field", ["time", "size", "sequence"])
@pytest.mark.parametrize("signed", [False, True])
def test_an_entry_with_a_number_beyond_any_float_is_refused_and_the_point_goes_on(
        store: ObjectStore, tmp_path: Path, field: str, signed: bool) -> None:
    """The attack: whoever can write the store plants the newest entry with a 400-digit number;
    math.isfinite of it raised OverflowError out of restore, save and prune, with or without
    a signing key (an entry is parsed before its signature is checked), so the point's
    checkpoints broke for good. Now that entry is refused: the previous one restores, and the
    next save and the pruning go on."""
    m = Manifest(store, PREFIX, keep=2, signing_key=b"s3cret" if signed else None)
    _save(m, tmp_path / "w", "epoch 1")
    _save(m, tmp_path / "w", "epoch 2")
    key = m.entry_keys()[-1]
    text = store.get_bytes(key).decode()
    entry = json.loads(text)
    huge = "1" + "0" * 400
    store.put_bytes(key, text.replace(f'"{field}": {json.dumps(entry[field])}', f'"{field}": {huge}').encode())
    restored, skipped = _restore(m, tmp_path)
    assert restored == "epoch 1" and len(skipped) == 1 and "below 2**63" in skipped[0], skipped
    _save(m, tmp_path / "w", "epoch 3")  # the next upload and its pruning
    assert _restore(m, tmp_path)[0] == "epoch 3"


def plant_newest(m: Manifest, archive: Path) -> None:
    """What anyone who can write the store can do without the signing key: replace the newest
    archive and fix up its entry's size and checksum."""
    key = m.entry_keys()[-1]
    entry = json.loads(m.store.get_bytes(key))
    entry.update(size=archive.stat().st_size, sha256=sha256_file(archive))
    m.store.put(entry["key"], archive)
    m.store.put_bytes(key, json.dumps(entry).encode())


def test_unsafe_archive_with_a_valid_entry_falls_back(store: ObjectStore, tmp_path: Path) -> None:
    m = Manifest(store, PREFIX)
    _save(m, tmp_path / "w", "safe")
    _save(m, tmp_path / "w", "to be replaced")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    plant_newest(m, evil)
    text, skipped = _restore(m, tmp_path)
    assert text == "safe" and "'..'" in skipped[0]
    assert not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize("alone", [False, True], ids=["after a genuine one", "alone"])
def test_link_chain_archive_is_refused_and_the_next_save_stays_inside(
        store: ObjectStore, tmp_path: Path, alone: bool) -> None:
    """Issue 14 item 6 (no signing key): the symbolic link chain planted as the newest
    checkpoint is refused; the attempt starts from the previous one (or afresh), and the
    evaluation's next save of checkpoint/state.json stays in its work directory."""
    m = Manifest(store, PREFIX)
    if not alone:
        _save(m, tmp_path / "w", "genuine")
    _save(m, tmp_path / "w", "to be replaced")
    chain = tmp_path / "chain.tar"
    with tarfile.open(chain, "w") as tar:
        for info, _ in chain_members():
            tar.addfile(info)
    plant_newest(m, chain)
    work = tmp_path.joinpath(*[f"d{i}" for i in range(9)])  # checkpoint/..(x10) is tmp_path
    work.mkdir(parents=True)
    skipped: list[str] = []
    entry = m.restore(work / "checkpoint", work, on_skip=lambda key, why: skipped.append(why))
    assert len(skipped) == 1 and "resolves outside" in skipped[0]
    if alone:
        assert entry is None
        (work / "checkpoint").mkdir()  # as the pilot's work directory has it
    else:
        assert entry is not None and (work / "checkpoint" / "state.txt").read_text() == "genuine"
    (work / "checkpoint" / "state.json").write_text("the evaluation's next save")
    assert not (tmp_path / "outside").exists()
    assert not (work / "checkpoint" / "state.json").is_symlink()
