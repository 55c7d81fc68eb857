"""Checkpoint archives from untrusted storage: every kind of escaping member is refused and
nothing is written, a sound archive restores exactly, and the size limit is a clear error."""
from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridhpo.checkpoints.archive import CheckpointTooLargeError, RefusedCheckpointError, pack
from gridhpo.checkpoints.extract import UnsafeArchiveError, unpack


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def _ok() -> tuple[tarfile.TarInfo, bytes]:
    return _info("state.bin"), b"good state"


UNSAFE: dict[str, tuple[Callable[[], list[tuple[tarfile.TarInfo, bytes | None]]], str]] = {
    "absolute path": (lambda: [_ok(), (_info("/tmp/gridhpo-evil"), b"x")], "absolute path"),
    "dot-dot": (lambda: [_ok(), (_info("../outside"), b"x")], "'..'"),
    "dot-dot inside": (lambda: [_ok(), (_info("a/../../outside"), b"x")], "'..'"),
    "symlink out (absolute)": (lambda: [_ok(), (_info("link", tarfile.SYMTYPE, "/etc/passwd"), None)],
                               "points outside"),
    "symlink out (relative)": (lambda: [_ok(), (_info("sub/link", tarfile.SYMTYPE, "../../x"), None)],
                               "points outside"),
    "write through symlink": (lambda: [(_info("d", tarfile.SYMTYPE, "."), None), (_info("d/f"), b"x")],
                              "through the symbolic link"),
    "hard link out": (lambda: [_ok(), (_info("hl", tarfile.LNKTYPE, "../../etc/passwd"), None)], "points outside"),
    "character device": (lambda: [_ok(), (_info("null", tarfile.CHRTYPE), None)], "device"),
    "block device": (lambda: [_ok(), (_info("sda", tarfile.BLKTYPE), None)], "device"),
    "fifo": (lambda: [_ok(), (_info("pipe", tarfile.FIFOTYPE), None)], "FIFO"),
    "hard link to a symbolic link": (lambda: [(_info("s", tarfile.SYMTYPE, "state.bin"), None), _ok(),
                                              (_info("h", tarfile.LNKTYPE, "s"), None)], "earlier regular file"),
    "same name twice": (lambda: [_ok(), (_info("state.bin", tarfile.SYMTYPE, "x"), None)], "appears twice"),
    "link chain": (lambda: chain_members(), "resolves outside"),
}


def chain_members(depth: int = 10) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The archive of issue 14: ``state.json -> A/B/.../J/../..(x10)/outside``, then ``A ... J -> .``.

    Each link on its own points inside (``A/B/.../J/..`` x10 is ``.`` on paper); together
    ``A/B/.../J`` is the folder itself and the ``..`` climb ten levels out of it."""
    letters = [chr(ord("A") + i) for i in range(depth)]
    target = "/".join(letters) + "/" + "../" * depth + "outside"
    return [(_info("state.json", tarfile.SYMTYPE, target), None),
            *((_info(letter, tarfile.SYMTYPE, "."), None) for letter in letters)]


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_refused_and_write_nothing(case: str, tmp_path: Path) -> None:
    make, why = UNSAFE[case]
    work = tmp_path / "work"
    (work / "checkpoint").mkdir(parents=True)
    (work / "checkpoint" / "previous").write_text("kept")
    archive = _archive(tmp_path / "evil.tar", *make())
    with pytest.raises(UnsafeArchiveError, match=why):
        unpack(archive, work / "checkpoint", source="checkpoint evil.tar")
    # the target is untouched and no staging folder is left behind
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint"]
    assert [p.name for p in (work / "checkpoint").iterdir()] == ["previous"]
    assert not (tmp_path / "outside").exists()


def test_link_chain_refused_and_the_next_save_stays_inside(tmp_path: Path) -> None:
    """The data filter passes the chain (each link is checked before the next exists); the
    restore refuses it, and what the evaluation then writes to checkpoint/state.json stays in
    its work directory."""
    archive = _archive(tmp_path / "chain.tar", *chain_members())
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(9)])  # checkpoint/..(x10) is tmp_path
    (deep / "checkpoint").mkdir(parents=True)
    with tarfile.open(archive) as tar:  # the attack: the standard library's filter alone lets it through
        tar.extractall(deep / "plain", filter="data")
    assert (deep / "plain" / "state.json").resolve() == tmp_path / "outside"
    with pytest.raises(UnsafeArchiveError, match=r"'state\.json' .* resolves outside"):
        unpack(archive, deep / "checkpoint", source="checkpoint chain.tar")
    assert sorted(p.name for p in deep.iterdir()) == ["checkpoint", "plain"]  # no staging folder left
    (deep / "checkpoint" / "state.json").write_text("the evaluation's next save")
    assert not (tmp_path / "outside").exists()


def test_links_that_stay_inside_restore(tmp_path: Path) -> None:
    """Links to other links, through folders, back up to the top: all fine while no step leaves."""
    archive = _archive(tmp_path / "ok.tar", (_info("sub", tarfile.DIRTYPE), None), (_info("sub/w.bin"), b"w"),
                       (_info("sub/up", tarfile.SYMTYPE, ".."), None),
                       (_info("latest", tarfile.SYMTYPE, "sub/up/sub/w.bin"), None),
                       (_info("again", tarfile.SYMTYPE, "latest"), None),
                       (_info("hard", tarfile.LNKTYPE, "sub/w.bin"), None))
    dest = tmp_path / "work" / "checkpoint"
    dest.parent.mkdir()
    unpack(archive, dest)
    assert (dest / "again").read_bytes() == b"w" and (dest / "hard").read_bytes() == b"w"
    assert (dest / "hard").stat().st_ino == (dest / "sub" / "w.bin").stat().st_ino


@pytest.mark.parametrize("mtime", ["1e300", "inf", "-1e30", "nan"])
def test_absurd_times_are_refused(tmp_path: Path, mtime: str) -> None:
    info = _info("state.bin")
    info.pax_headers = {"mtime": mtime}
    archive = tmp_path / "t.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "work").mkdir()
    with pytest.raises(RefusedCheckpointError, match="not a readable tar archive"):
        unpack(archive, tmp_path / "work" / "checkpoint")
    assert list((tmp_path / "work").iterdir()) == []


def test_a_header_that_sends_the_reader_back_is_refused_at_once(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack: a pax ``size`` of -1536 points the reader back at its own header, so the
    standard library reads that header again forever, keeping every copy (a 4 KiB archive held
    a pilot with its memory growing). Refused at that header, nothing written."""
    archive = tmp_path / "loop.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("first"), io.BytesIO(b""))
        info = _info("again.bin")
        info.pax_headers = {"size": "-1536"}  # pax header block + its record + the member's header
        tar.addfile(info, io.BytesIO(b""))
    reads = 0
    original = tarfile.TarFile.next

    def counted(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        nonlocal reads
        reads += 1
        assert reads < 100, "the reader went round the archive's headers"
        return original(self)

    monkeypatch.setattr(tarfile.TarFile, "next", counted)
    (tmp_path / "work").mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"member 'again.bin' has a negative size \(-1536\): refused"):
        unpack(archive, tmp_path / "work" / "checkpoint")
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("depth", [300, 1000])
def test_a_member_nested_too_deep_is_refused(tmp_path: Path, depth: int) -> None:
    """The attack: 1000 folders made os.makedirs raise RecursionError out of the restore (the
    pilot crashed, and each retry of the point crashed another); the check looked up every prefix
    of every name. At most 256 folders, refused before anything is written."""
    archive = _archive(tmp_path / "deep.tar", (_info("a/" * depth + "f"), b"x"))
    (tmp_path / "work").mkdir()
    with pytest.raises(UnsafeArchiveError, match="deeper than 256 folders"):
        unpack(archive, tmp_path / "work" / "checkpoint")
    assert list((tmp_path / "work").iterdir()) == []


def test_links_planted_to_be_resolved_again_and_again_are_refused(tmp_path: Path) -> None:
    """The attack: a chain of 39 links, each target 255 components that end where they started,
    and many links into the chain's head: each resolution costs about 10,000 lookups, a larger
    archive hours. All the resolutions of one archive share a budget of 200,000 steps."""
    pad = "d/../" * 127
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [(_info("d", tarfile.DIRTYPE), None)]
    members += [(_info(f"x{i}", tarfile.SYMTYPE, pad + (f"x{i + 1}" if i < 38 else "d")), None) for i in range(39)]
    members += [(_info(f"y{j}", tarfile.SYMTYPE, pad + "x0"), None) for j in range(30)]
    archive = _archive(tmp_path / "links.tar", *members)
    (tmp_path / "work").mkdir()
    with pytest.raises(UnsafeArchiveError, match="take over 200000 steps to resolve"):
        unpack(archive, tmp_path / "work" / "checkpoint")
    assert list((tmp_path / "work").iterdir()) == []


def test_a_checkpoint_folder_nested_too_deep_is_our_error_not_a_crash(tmp_path: Path) -> None:
    """An evaluation's own checkpoint/ 1000 folders deep: os.walk and tarfile recurse per level,
    and their RecursionError ended the pilot. It is a CheckpointError, which the pilot logs."""
    from gridhpo.checkpoints.archive import fingerprint, folder_size
    from gridhpo.errors import CheckpointError

    folder = tmp_path / "checkpoint"
    deep = folder
    deep.mkdir()
    for _ in range(1000):  # one level at a time: os.makedirs recurses too
        deep = deep / "a"
        deep.mkdir()
    try:
        for call in (lambda: folder_size(folder), lambda: fingerprint(folder),
                     lambda: pack(folder, tmp_path / "out.tar", 1 << 20)):
            with pytest.raises(CheckpointError, match="nested too deep"):
                call()
    finally:  # one level at a time: pytest's own clean-up of old temporary folders recurses too
        while deep != folder:
            deep.rmdir()
            deep = deep.parent


def test_garbage_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive at all" * 100)
    with pytest.raises(RefusedCheckpointError, match="not a readable tar archive"):
        unpack(bad, tmp_path / "checkpoint")


def test_pack_and_unpack_restore_the_folder_exactly(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "weights.bin").write_bytes(bytes(range(256)) * 100)
    (src / "sub" / "opt.json").write_text('{"step": 3}')
    (src / "latest").symlink_to("weights.bin")  # a link inside the folder is fine
    archive = tmp_path / "a.tar"
    size = pack(src, archive, max_size=1 << 20)
    assert size == archive.stat().st_size
    dest = tmp_path / "work" / "checkpoint"
    dest.mkdir(parents=True)
    (dest / "stale").write_text("replaced whole")
    unpack(archive, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "latest", "sub", "sub/opt.json", "weights.bin"]
    assert (dest / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()
    assert (dest / "latest").is_symlink() and (dest / "latest").read_bytes() == (src / "weights.bin").read_bytes()


def test_size_limit_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(b"\0" * 5000)
    with pytest.raises(CheckpointTooLargeError,
                       match=r"checkpoint/ holds 5 kB, over evaluation.checkpoint.max_size \(4 kB\)"):
        pack(src, tmp_path / "a.tar", max_size=4000)
    assert not (tmp_path / "a.tar").exists()


# ----------------------------------------------------------------------------- fuzz

_TYPES = [tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
          tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE, b"x", b"Z"]
_PARTS = st.sampled_from(["a", "b", "state.json", ".", "..", "", "A", "/", "\\", "é"])
_PATHS = st.lists(_PARTS, min_size=1, max_size=6).map("/".join)
_NAMES = st.lists(st.sampled_from(["a", "b", "A", "state.json", "a", "."]), min_size=1, max_size=3).map("/".join)
_NUMBERS = st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def _members(draw: st.DrawFn) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for _ in range(draw(st.integers(1, 6))):
        info = _info(draw(_NAMES | _PATHS), draw(st.sampled_from(_TYPES)), draw(_NAMES | _PATHS))
        info.mode = draw(st.integers(0, 0o7777))
        info.pax_headers = draw(st.dictionaries(
            st.sampled_from(["mtime", "GNU.sparse.map", "GNU.sparse.size", "size", "path", "linkpath"]),
            _NUMBERS.map(str) | _NAMES, max_size=2))
        out.append((info, draw(st.binary(max_size=64)) if info.isreg() else None))
    return out


def _check_unpack(archive: Path, root: Path) -> None:
    """unpack either refuses with our error or restores a folder whose every path stays inside."""
    from gridhpo.checkpoints.extract import stays_inside

    dest = root / "work" / "checkpoint"
    dest.parent.mkdir(parents=True)
    try:
        unpack(archive, dest, max_size=1 << 16)
    except RefusedCheckpointError:
        assert sorted(p.name for p in dest.parent.iterdir()) == []
        return
    for p in dest.rglob("*"):
        assert stays_inside(dest, p.relative_to(dest).as_posix())
    assert sorted(p.name for p in root.iterdir()) == ["fuzz.tar", "work"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=_members())
def test_fuzzed_headers_never_crash_or_escape(tmp_path_factory: pytest.TempPathFactory,
                                             members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    try:
        with tarfile.open(root / "fuzz.tar", "w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                if data is not None:
                    info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
    except (ValueError, OverflowError, tarfile.TarError, UnicodeError):
        return  # tarfile cannot even write it
    _check_unpack(root / "fuzz.tar", root)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 3071), st.integers(0, 255)), min_size=1, max_size=12))
def test_fuzzed_bytes_never_crash_or_escape(tmp_path_factory: pytest.TempPathFactory,
                                           flips: list[tuple[int, int]]) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    good = _archive(root / "good.tar", (_info("d", tarfile.DIRTYPE), None), (_info("d/w.bin"), b"weights" * 20),
                    (_info("latest", tarfile.SYMTYPE, "d/w.bin"), None), (_info("h", tarfile.LNKTYPE, "d/w.bin"), None))
    data = bytearray(good.read_bytes())
    for pos, byte in flips:
        data[pos] = byte
    good.unlink()
    (root / "fuzz.tar").write_bytes(bytes(data))
    _check_unpack(root / "fuzz.tar", root)


@pytest.mark.parametrize(("version", "patched"), [((3, 11, 7), False), ((3, 11, 10), True), ((3, 12, 5), False),
                                                  ((3, 12, 6), True), ((3, 13, 0), True)])
def test_pythons_whose_tarfile_parses_pax_headers_in_quadratic_time_are_known(
        monkeypatch: pytest.MonkeyPatch, version: tuple[int, int, int], patched: bool) -> None:
    """CVE-2024-6232 runs before any check of ours: the pilot warns at its start on such a Python."""
    import sys

    from gridhpo.checkpoints.extract import tarfile_is_patched

    monkeypatch.setattr(sys, "version_info", version)
    assert tarfile_is_patched() is patched
