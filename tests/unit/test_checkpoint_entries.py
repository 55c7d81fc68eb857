"""Manifest entries from untrusted storage (issue 14 item 8), over both stores: every entry of
the wrong shape is skipped with a warning and never stops a save or a restore; planted entries
near the last 8-digit sequence number neither make the next save wrap or collide nor, with
signing on, make retention delete a genuine checkpoint."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gridhpo.checkpoints import ObjectStore, sha256_file
from gridhpo.checkpoints.manifest import Manifest, point_prefix
from gridhpo.errors import CheckpointError
from tests.unit.test_checkpoint_manifest import _restore, _save

PREFIX = point_prefix(6, "entries", 2)
KEY = b"s3cret"


def _plant(store: ObjectStore, tmp_path: Path, sequence: int, attempt: int = 1) -> str:
    """A well-formed but unsigned entry and its archive, as anyone who can write the store can make."""
    forger = Manifest(store, f"forge-{sequence}/")
    _save(forger, tmp_path / f"forge-{sequence}", "malicious")
    [forged] = forger.entries()
    base = f"{PREFIX}{sequence:08d}-a{attempt}"
    archive = tmp_path / "forged.tar"
    store.get(forged.key, archive)
    store.put(f"{base}.tar", archive)
    entry = {"task": 6, "point": 2, "attempt": attempt, "sequence": sequence, "size": archive.stat().st_size,
             "sha256": sha256_file(archive), "time": forged.time, "key": f"{base}.tar"}
    store.put_bytes(f"{base}.json", json.dumps(entry).encode())
    return f"{base}.json"


def test_planted_entries_near_the_last_sequence_with_signing_on(store: ObjectStore, tmp_path: Path) -> None:
    """The attack of issue 14: ten unsigned entries numbered up to 99999999 (and one at the
    next genuine number) before the pilot's next save."""
    m = Manifest(store, PREFIX, keep=3, signing_key=KEY)
    assert [_save(m, tmp_path / "w", f"genuine {i}") for i in (1, 2)] == [1, 2]
    planted = [_plant(store, tmp_path, 99_999_990 + i) for i in range(10)] + [_plant(store, tmp_path, 3, attempt=7)]
    assert _save(m, tmp_path / "w", "genuine 3") == 4  # no wrap to 100000000, no reuse of 3
    assert [(e.sequence, e.signature is not None) for e in m.entries()] == [(1, True), (2, True), (4, True)]
    text, skipped = _restore(m, tmp_path)
    assert text == "genuine 3"
    assert len(skipped) == 10 and all("unsigned" in why for why in skipped)  # the ones newer than it
    assert _save(m, tmp_path / "w", "genuine 4") == 5
    assert [e.sequence for e in m.entries()] == [2, 4, 5]  # retention counts genuine ones only
    assert all(k in store.list(PREFIX) for k in planted)  # what does not verify is not touched either
    for i in (2, 4, 5):
        assert f"{PREFIX}{i:08d}-a1.tar" in store.list(PREFIX)


def test_without_signing_a_planted_last_sequence_stops_saves_with_a_clear_error(tmp_path: Path) -> None:
    from gridhpo.checkpoints import open_store

    store = open_store(f"file://{tmp_path / 'store'}")
    m = Manifest(store, PREFIX)
    _save(m, tmp_path / "w", "genuine")
    _plant(store, tmp_path, 99_999_999)
    with pytest.raises(CheckpointError, match=r"sequence numbers are used up to 99999999.*set "
                                              r"evaluation\.checkpoint\.signing_key"):
        _save(m, tmp_path / "w", "next")
    assert not any(k.startswith(f"{PREFIX}1000") for k in store.list(PREFIX))  # never a 9-digit name


GOOD = {"task": 6, "point": 2, "attempt": 1, "sequence": 2, "size": 10240, "sha256": "ab" * 32,
        "time": 1.5, "key": f"{PREFIX}00000002-a1.tar"}
MALFORMED: dict[str, tuple[bytes, str]] = {
    "list": (b"[1, 2]", "a JSON list"),
    "string": (b'"entry"', "a JSON str"),
    "deep nesting": (b"[" * 30_000 + b"]" * 30_000, "not JSON (RecursionError)"),
    "not utf-8": (b"\xff\xfe{}", "not JSON"),
    "empty": (b"", "not JSON"),
    "too large": (b" " * (70 << 10) + json.dumps(GOOD).encode(), "more than the 65536 bytes"),
    "missing field": (json.dumps({k: v for k, v in GOOD.items() if k != "size"}).encode(), "no field 'size'"),
    "key not a string": (json.dumps({**GOOD, "key": 5}).encode(), "key must be a string"),
    "negative size": (json.dumps({**GOOD, "size": -1}).encode(), "size must be a non-negative integer"),
    "size a string": (json.dumps({**GOOD, "size": "10240"}).encode(), "size must be a non-negative integer"),
    "bool sequence": (json.dumps({**GOOD, "sequence": True}).encode(), "sequence must be a non-negative"),
    "sha256 a number": (json.dumps({**GOOD, "sha256": 12}).encode(), "sha256 must be 64"),
    "time a string": (json.dumps({**GOOD, "time": "now"}).encode(), "time must be a finite number"),
    "time NaN": (json.dumps({**GOOD, "time": float("nan")}).encode(), "time must be a finite number"),
    "signature a number": (json.dumps({**GOOD, "signature": 7}).encode(), "signature must be 64"),
    "signature not ascii": (json.dumps({**GOOD, "signature": "é" * 64}).encode(), "signature must be 64"),
    "sequence not its name's": (json.dumps({**GOOD, "sequence": 9}).encode(), "differ from its name's"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_entry_is_skipped_with_a_warning(store: ObjectStore, tmp_path: Path, case: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    data, why = MALFORMED[case]
    m = Manifest(store, PREFIX, keep=1, signing_key=KEY if "signature" in case else None)
    _save(m, tmp_path / "w", "good")
    store.put_bytes(f"{PREFIX}00000002-a1.json", data)
    with caplog.at_level(logging.WARNING, logger="gridhpo.checkpoints.manifest"):
        assert [e.sequence for e in m.entries()] == [1]
    assert why in caplog.text
    text, skipped = _restore(m, tmp_path)
    assert text == "good" and len(skipped) == 1 and why in skipped[0]
    assert _save(m, tmp_path / "w", "next") == 3  # past the malformed one's number
    assert [e.sequence for e in m.entries()] == [3]  # keep=1: the genuine 1 pruned, the malformed ignored
    assert f"{PREFIX}00000002-a1.json" in store.list(PREFIX)
