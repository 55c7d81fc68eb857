"""Checkpoint folders as tar archives, and their safe restore from untrusted storage.

``pack`` writes an uncompressed tar (model weights rarely compress, and gzip would cost
more time than the upload it saves). ``unpack`` reads an archive that may have been crafted
by whoever can write to the store, so it checks every member before writing anything and
refuses the whole archive if one member would write outside the target folder: absolute
names, ``..`` parts, symbolic or hard links pointing outside, device files and FIFOs.
"""
from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tarfile
import uuid
from pathlib import Path

from gridhpo.errors import CheckpointError

log = logging.getLogger(__name__)


class CheckpointTooLargeError(CheckpointError):
    """A checkpoint folder over ``evaluation.checkpoint.max_size``."""


class RefusedCheckpointError(CheckpointError):
    """A checkpoint that does not verify: bad signature, size or checksum, unsafe or unreadable archive."""


class UnsafeArchiveError(RefusedCheckpointError):
    """An archive with a member that would write outside its folder or create a device."""


def folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue  # removed by the evaluation while we walk
    return total


def fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of every entry: changes whenever the evaluation writes a file."""
    out = []
    for dirpath, dirs, files in os.walk(folder):
        for name in sorted(files + dirs):
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            out.append((os.path.relpath(p, folder), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def pack(folder: Path, dest: Path, max_size: int, what: str = "checkpoint/") -> int:
    """Archive the contents of ``folder`` into ``dest``; returns the archive's size."""
    size = folder_size(folder)
    if size > max_size:
        raise CheckpointTooLargeError(
            f"{what} holds {_human(size)}, over evaluation.checkpoint.max_size ({_human(max_size)}): "
            "save less state or raise the limit in the task file")
    try:
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(os.listdir(folder)):
                tar.add(folder / entry, arcname=entry, recursive=True)
    except (OSError, tarfile.TarError) as exc:
        raise CheckpointError(f"cannot archive {what}: {exc}") from exc
    return dest.stat().st_size


def check_members(tar: tarfile.TarFile, source: str) -> list[tarfile.TarInfo]:
    """Every member, or UnsafeArchiveError naming the first one that is not safe."""
    members = tar.getmembers()
    for m in members:
        name = m.name
        norm = posixpath.normpath(name)
        if name.startswith("/") or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
            raise UnsafeArchiveError(f"{source}: member {name!r} has an absolute path: refused")
        if ".." in name.split("/") or norm.startswith(".."):
            raise UnsafeArchiveError(f"{source}: member {name!r} goes up with '..': refused")
        if m.isdev() or m.isfifo():
            raise UnsafeArchiveError(f"{source}: member {name!r} is a device or FIFO: refused")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise UnsafeArchiveError(f"{source}: member {name!r} has unsupported type {m.type!r}: refused")
        if m.issym():
            target = m.linkname
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(norm), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise UnsafeArchiveError(f"{source}: symbolic link {name!r} -> {target!r} points outside: refused")
        if m.islnk():
            target = posixpath.normpath(m.linkname)
            if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                raise UnsafeArchiveError(f"{source}: hard link {name!r} -> {m.linkname!r} points outside: refused")
    _check_link_chains(members, source)
    return members


def _check_link_chains(members: list[tarfile.TarInfo], source: str) -> None:
    """A member written through a symlinked folder of the same archive could escape: refuse."""
    links = {posixpath.normpath(m.name) for m in members if m.issym()}
    for m in members:
        parts = posixpath.normpath(m.name).split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise UnsafeArchiveError(f"{source}: member {m.name!r} is written through the symbolic link "
                                         f"{'/'.join(parts[:i])!r}: refused")


def unpack(archive: Path, dest: Path, source: str = "checkpoint archive") -> None:
    """Restore ``archive`` as the folder ``dest`` (replaced whole, only once all is checked)."""
    staging = dest.parent / f".{dest.name}.restore-{uuid.uuid4().hex[:8]}"
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_members(tar, source)
            staging.mkdir()
            # the standard library's "data" filter is a second line of defence behind our checks
            tar.extractall(staging, members=members, filter="data")
    except UnsafeArchiveError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except tarfile.FilterError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnsafeArchiveError(f"{source}: {exc}: refused") from exc
    except (OSError, tarfile.TarError, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise RefusedCheckpointError(f"{source}: not a readable tar archive: {exc}") from exc
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(staging, dest)
