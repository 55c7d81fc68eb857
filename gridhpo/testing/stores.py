"""The ObjectStore contract (gridhpo.checkpoints.ObjectStore) as a pytest suite."""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from gridhpo.checkpoints import CorruptObjectError, MissingObjectError, ObjectStore
from gridhpo.errors import CheckpointError


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class StoreContract:
    """Subclass under a Test name where a ``store`` fixture gives an empty store (closed after)."""

    def test_put_get_roundtrip_and_replace(self, store: ObjectStore, tmp_path: Path) -> None:
        store.put("a/b/one.bin", write_file(tmp_path / "src", b"first"))
        store.get("a/b/one.bin", tmp_path / "dst")
        assert (tmp_path / "dst").read_bytes() == b"first"
        store.put_bytes("a/b/one.bin", b"second version")
        assert store.get_bytes("a/b/one.bin") == b"second version"

    def test_get_of_a_missing_key_raises_missing(self, store: ObjectStore, tmp_path: Path) -> None:
        with pytest.raises(MissingObjectError, match="no object nothing/here"):
            store.get("nothing/here", tmp_path / "dst")
        assert not (tmp_path / "dst").exists() or (tmp_path / "dst").stat().st_size == 0

    def test_get_reads_at_most_max_bytes(self, store: ObjectStore, tmp_path: Path) -> None:
        store.put_bytes("lim/k", b"x" * 1000)
        store.get("lim/k", tmp_path / "exact", max_bytes=1000)
        assert (tmp_path / "exact").read_bytes() == b"x" * 1000
        with pytest.raises(CorruptObjectError, match="object lim/k holds more than the 999 bytes expected"):
            store.get("lim/k", tmp_path / "short", max_bytes=999)
        assert not (tmp_path / "short").exists() or (tmp_path / "short").stat().st_size <= 999
        store.put_bytes("lim/empty", b"")
        assert store.get_bytes("lim/empty", max_bytes=10) == b""
        assert store.get_bytes("lim/empty", max_bytes=0) == b""
        with pytest.raises(CorruptObjectError):
            store.get_bytes("lim/k", max_bytes=0)
        with pytest.raises(MissingObjectError):
            store.get_bytes("lim/none", max_bytes=10)

    def test_list_returns_sorted_keys_under_a_prefix_only(self, store: ObjectStore) -> None:
        for key in ("t1/p2/b", "t1/p2/a", "t1/p10/x", "t2/p2/a", "t1/p2x"):
            store.put_bytes(key, key.encode())
        assert store.list("t1/p2/") == ["t1/p2/a", "t1/p2/b"]
        assert store.list("t1/p2") == ["t1/p2/a", "t1/p2/b", "t1/p2x"]
        assert store.list("t3/") == []
        assert len(store.list("")) == 5

    def test_delete_removes_and_tolerates_missing(self, store: ObjectStore) -> None:
        store.put_bytes("d/k", b"x")
        store.delete("d/k")
        assert store.list("d/") == []
        store.delete("d/k")  # not an error
        with pytest.raises(MissingObjectError):
            store.get_bytes("d/k")


    def test_copy_makes_a_byte_identical_object_and_leaves_the_source(self, store: ObjectStore) -> None:
        data = os.urandom(70_000)
        store.put_bytes("m1/ckpt/00000001.tar", data)
        store.copy("m1/ckpt/00000001.tar", "m2/ckpt/00000001.tar", max_bytes=len(data))
        assert store.get_bytes("m2/ckpt/00000001.tar") == data == store.get_bytes("m1/ckpt/00000001.tar")
        store.put_bytes("m2/ckpt/00000001.tar", b"old")
        store.copy("m1/ckpt/00000001.tar", "m2/ckpt/00000001.tar")  # replaces, as put does
        assert store.get_bytes("m2/ckpt/00000001.tar") == data

    def test_copy_of_a_missing_or_oversized_object_writes_nothing(self, store: ObjectStore) -> None:
        with pytest.raises(MissingObjectError, match="no object none/x"):
            store.copy("none/x", "dst/x")
        store.put_bytes("big/x", b"y" * 500)
        with pytest.raises(CorruptObjectError, match="holds more than the 499 bytes expected"):
            store.copy("big/x", "dst/x", max_bytes=499)
        assert store.list("dst/") == []

    @pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/"])
    def test_bad_keys_are_refused(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(CheckpointError, match="not a relative path"):
            store.put_bytes(key, b"x")

    def test_an_object_is_visible_only_once_complete(self, store: ObjectStore, tmp_path: Path) -> None:
        """A reader polling while a large upload runs never sees a partial object."""
        data = os.urandom(12 << 20)
        digest = hashlib.sha256(data).hexdigest()
        src = write_file(tmp_path / "big", data)
        done = threading.Event()
        errors: list[BaseException] = []

        def upload() -> None:
            try:
                store.put("vis/big.tar", src)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
            finally:
                done.set()

        t = threading.Thread(target=upload)
        t.start()
        seen = 0
        while True:
            finished = done.is_set()
            keys = store.list("vis/")
            assert keys in ([], ["vis/big.tar"])  # never a temporary or partial name
            if keys:
                store.get("vis/big.tar", tmp_path / f"read-{seen}")
                got = (tmp_path / f"read-{seen}").read_bytes()
                assert len(got) == len(data) and hashlib.sha256(got).hexdigest() == digest
                seen += 1
            if finished:
                break
        t.join()
        assert not errors, errors
        assert seen >= 1
