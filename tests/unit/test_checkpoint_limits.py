"""Restore under limits (issue 14 item 7), over both stores: a gzip bomb, a sparse member, a
member over ``max_size``, an object larger than its entry says and an entry larger than
``max_size`` allows are refused as corrupt, falling back to the previous checkpoint, with the
bytes written bounded; on the folder store, an object that is a symbolic link to /dev/zero, a
FIFO or a folder is refused without blocking.

Bytes written are measured by the kernel (``wchar`` of /proc/self/io: every byte this process
passed to write()), and each test caps the size of any file it writes (RLIMIT_FSIZE) so that a
regression fails the test instead of filling the disk."""
from __future__ import annotations

import io
import json
import resource
import signal
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridhpo.checkpoints import ObjectStore
from gridhpo.checkpoints.manifest import Manifest, point_prefix
from tests.unit.test_checkpoint_manifest import plant_newest
from tests.unit.test_store_contract import ODD_KINDS, make_odd, with_deadline

PREFIX = point_prefix(5, "limits", 3)
MAX_SIZE = 1 << 20
BOMB_SIZE = 315_000_000


@pytest.fixture(autouse=True)
def file_size_cap() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death past the cap
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def written() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


@pytest.fixture(scope="session")
def gzip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's bomb: a 306 KB gzip-compressed tar of one 315 MB member."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.tar.gz"
    info = tarfile.TarInfo("state.bin")
    info.size = BOMB_SIZE
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        tar.addfile(info, io.BufferedReader(_Zeros(BOMB_SIZE)))
    assert path.stat().st_size < 400_000
    return path


def _genuine_then(store: ObjectStore, tmp_path: Path) -> Manifest:
    """A point with a genuine checkpoint ("genuine") and a newer one for the attacker to replace."""
    m = Manifest(store, PREFIX)
    for text in ("genuine", "to be replaced"):
        ck = tmp_path / "w" / "checkpoint"
        ck.mkdir(parents=True, exist_ok=True)
        (ck / "state.txt").write_text(text)
        assert m.save(ck, tmp_path / "w", task=5, point=3, attempt=1, max_size=MAX_SIZE) is not None
    return m


def _restore(m: Manifest, tmp_path: Path) -> tuple[str | None, list[str], int]:
    """(restored state.txt, reasons of the skipped checkpoints, bytes written while restoring)."""
    work = tmp_path / "retry"
    work.mkdir()
    skipped: list[str] = []
    before = written()
    entry = m.restore(work / "checkpoint", work, on_skip=lambda key, why: skipped.append(why), max_size=MAX_SIZE)
    cost = written() - before
    text = (work / "checkpoint" / "state.txt").read_text() if entry else None
    assert sorted(p.name for p in work.iterdir()) == (["checkpoint"] if entry else [])  # nothing left behind
    return text, skipped, cost


def _planted_is_refused(store: ObjectStore, tmp_path: Path, archive: Path, why: str) -> int:
    """Plant ``archive`` as the newest checkpoint: the restore falls back to the genuine one,
    giving ``why``; returns the bytes it wrote."""
    m = _genuine_then(store, tmp_path)
    plant_newest(m, archive)
    text, skipped, cost = _restore(m, tmp_path)
    assert text == "genuine"
    assert len(skipped) == 1 and why in skipped[0], skipped
    return cost


def _one_member(path: Path, size: int) -> Path:
    info = tarfile.TarInfo("state.bin")
    info.size = size
    with tarfile.open(path, "w") as tar:
        tar.addfile(info, io.BufferedReader(_Zeros(size)))
    return path


def test_gzip_bomb_is_refused_with_bounded_writes(store: ObjectStore, tmp_path: Path, gzip_bomb: Path) -> None:
    with tarfile.open(gzip_bomb) as tar:  # what it would be: 315 MB from 306 KB
        assert tar.getmembers()[0].size == BOMB_SIZE
    cost = _planted_is_refused(store, tmp_path, gzip_bomb, "gzip-compressed archive")
    assert cost < gzip_bomb.stat().st_size + MAX_SIZE


def test_sparse_member_counts_by_its_full_size(store: ObjectStore, tmp_path: Path) -> None:
    """A 10 GB member stored as 5 bytes of data and a hole."""
    sparse = tmp_path / "sparse.tar"
    info = tarfile.TarInfo("state.bin")
    info.size = 5
    info.pax_headers = {"GNU.sparse.map": "0,5", "GNU.sparse.size": str(10 << 30)}
    with tarfile.open(sparse, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"hello"))
    with tarfile.open(sparse) as tar:
        assert tar.getmembers()[0].size == 10 << 30 and tar.getmembers()[0].sparse
    cost = _planted_is_refused(store, tmp_path, sparse, "over evaluation.checkpoint.max_size (1.05 MB)")
    assert cost < sparse.stat().st_size + MAX_SIZE


def test_member_over_max_size_is_refused(store: ObjectStore, tmp_path: Path) -> None:
    big = _one_member(tmp_path / "big.tar", MAX_SIZE * 5 // 2)  # small enough to download, too large to restore
    cost = _planted_is_refused(store, tmp_path, big, "over evaluation.checkpoint.max_size")
    assert cost < big.stat().st_size + MAX_SIZE


def test_object_larger_than_its_entry_is_read_no_further(store: ObjectStore, tmp_path: Path) -> None:
    """The archive replaced by 30 MB, the entry left as it was: at most the entry's size is read."""
    m = _genuine_then(store, tmp_path)
    newest = m.entries()[-1]
    store.put(newest.key, _one_member(tmp_path / "huge.tar", 30 << 20))
    text, skipped, cost = _restore(m, tmp_path)
    assert text == "genuine"
    assert len(skipped) == 1 and f"holds more than the {newest.size} bytes expected" in skipped[0]
    assert cost < 2 * MAX_SIZE


def test_entry_larger_than_max_size_allows_is_not_downloaded(store: ObjectStore, tmp_path: Path) -> None:
    huge = _one_member(tmp_path / "huge.tar", 30 << 20)
    cost = _planted_is_refused(store, tmp_path, huge, "an archive within evaluation.checkpoint.max_size")
    assert cost < MAX_SIZE


@pytest.mark.parametrize("kind", ODD_KINDS)
@pytest.mark.parametrize("what", ["archive", "entry"])
def test_folder_store_object_that_is_not_a_file_is_corrupt(tmp_path: Path, kind: str, what: str) -> None:
    from gridhpo.checkpoints import open_store

    store = open_store(f"file://{tmp_path / 'store'}")
    m = _genuine_then(store, tmp_path)
    newest = m.entry_keys()[-1]
    key = newest if what == "entry" else json.loads(store.get_bytes(newest))["key"]
    path = tmp_path / "store" / key
    path.unlink()
    make_odd(path, kind)
    text, skipped, cost = with_deadline(lambda: _restore(m, tmp_path))
    assert text == "genuine"
    if (what, kind) == ("entry", "folder"):
        assert skipped == []  # a folder is not listed as an object at all
    else:
        assert len(skipped) == 1 and "is not a regular file" in skipped[0]
    assert cost < MAX_SIZE
