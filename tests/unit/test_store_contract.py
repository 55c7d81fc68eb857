"""The ObjectStore contract (gridhpo.testing.stores), one suite over every backend: the local folder and S3 against a
real SeaweedFS server started on loopback by the tests."""
from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from gridhpo.checkpoints import CorruptObjectError, open_store
from gridhpo.errors import CheckpointError, ConfigError, UnknownNameError
from gridhpo.testing.stores import StoreContract, write_file
from tests.seaweed import s3_store_url


class TestStores(StoreContract):
    """The ``store`` fixture (tests/conftest.py): the local folder, S3 on SeaweedFS."""


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
        s.put("k", write_file(tmp_path / "x", b"x"))
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
