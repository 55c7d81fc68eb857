"""The ObjectStore contract, one suite over every backend: the local folder and S3 against a
real SeaweedFS server started on loopback by the tests."""
from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from gridhpo.checkpoints import CorruptObjectError, MissingObjectError, ObjectStore, open_store
from gridhpo.errors import CheckpointError, ConfigError, UnknownNameError
from tests.seaweed import s3_store_url


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_put_get_roundtrip_and_replace(store: ObjectStore, tmp_path: Path) -> None:
    store.put("a/b/one.bin", _file(tmp_path / "src", b"first"))
    store.get("a/b/one.bin", tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == b"first"
    store.put_bytes("a/b/one.bin", b"second version")
    assert store.get_bytes("a/b/one.bin") == b"second version"


def test_get_of_a_missing_key_raises_missing(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(MissingObjectError, match="no object nothing/here"):
        store.get("nothing/here", tmp_path / "dst")
    assert not (tmp_path / "dst").exists() or (tmp_path / "dst").stat().st_size == 0


def test_get_reads_at_most_max_bytes(store: ObjectStore, tmp_path: Path) -> None:
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


T = TypeVar("T")
ODD_KINDS = ["symlink to /dev/zero", "fifo", "folder"]


def make_odd(path: Path, kind: str) -> None:
    """What put() never writes but anyone who can write a folder store can put there."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")


def with_deadline(fn: Callable[[], T], seconds: float = 60.0) -> T:
    """``fn()`` in a thread: one that blocks (on a FIFO) fails the test instead of hanging the run."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"blocked for {seconds}s"
    if errors:
        raise errors[0]
    return out[0]


@pytest.mark.parametrize("kind", ODD_KINDS)
@pytest.mark.parametrize("max_bytes", [None, 100])
def test_local_store_object_that_is_not_a_file_is_corrupt(tmp_path: Path, kind: str, max_bytes: int | None) -> None:
    """get refuses it at once, with or without a size bound, instead of reading /dev/zero or
    waiting on a FIFO."""
    store = open_store(f"file://{tmp_path / 'store'}")
    path = tmp_path / "store" / "odd" / "k"
    path.parent.mkdir(parents=True)
    make_odd(path, kind)
    with pytest.raises(CorruptObjectError, match="object odd/k is not a regular file"):
        with_deadline(lambda: store.get("odd/k", tmp_path / "dst", max_bytes=max_bytes))
    assert not (tmp_path / "dst").exists() or (tmp_path / "dst").stat().st_size == 0


def test_list_returns_sorted_keys_under_a_prefix_only(store: ObjectStore) -> None:
    for key in ("t1/p2/b", "t1/p2/a", "t1/p10/x", "t2/p2/a", "t1/p2x"):
        store.put_bytes(key, key.encode())
    assert store.list("t1/p2/") == ["t1/p2/a", "t1/p2/b"]
    assert store.list("t1/p2") == ["t1/p2/a", "t1/p2/b", "t1/p2x"]
    assert store.list("t3/") == []
    assert len(store.list("")) == 5


def test_delete_removes_and_tolerates_missing(store: ObjectStore) -> None:
    store.put_bytes("d/k", b"x")
    store.delete("d/k")
    assert store.list("d/") == []
    store.delete("d/k")  # not an error
    with pytest.raises(MissingObjectError):
        store.get_bytes("d/k")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/"])
def test_bad_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(CheckpointError, match="not a relative path"):
        store.put_bytes(key, b"x")


def test_an_object_is_visible_only_once_complete(store: ObjectStore, tmp_path: Path) -> None:
    """A reader polling while a large upload runs never sees a partial object."""
    data = os.urandom(12 << 20)
    digest = hashlib.sha256(data).hexdigest()
    src = _file(tmp_path / "big", data)
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


def test_unknown_scheme_fails_with_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 's3'"):
        open_store("s4://bucket/x")
    with pytest.raises(ConfigError, match="no scheme"):
        open_store("/just/a/path")


def test_local_store_driver_errors_name_the_store(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot create the folder"):
        open_store(f"file://{blocker}/sub")


@pytest.mark.integration
def test_s3_missing_bucket_is_a_checkpoint_error_with_context(s3_endpoint: str, tmp_path: Path) -> None:
    s = open_store(f"s3://test:test@no-such-bucket-{uuid.uuid4().hex[:8]}/p?endpoint={s3_endpoint}")
    with pytest.raises(CheckpointError, match=r"store s3://test:\*\*\*@no-such-bucket.*upload of 'k' failed"):
        s.put("k", _file(tmp_path / "x", b"x"))
    s.close()


@pytest.mark.integration
def test_s3_settings_from_the_environment(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Endpoint, region and credentials may come from the usual AWS variables instead of the URL."""
    url = s3_store_url(s3_endpoint)
    bucket_prefix = url.split("@", 1)[1].split("?", 1)[0]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    s = open_store(f"s3://{bucket_prefix}")
    s.put_bytes("env/k", b"via environment")
    assert s.get_bytes("env/k") == b"via environment"
    s.close()


def test_s3_url_with_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'endpont'.*allowed: endpoint, profile, region"):
        open_store("s3://bucket/p?endpont=http://x")
