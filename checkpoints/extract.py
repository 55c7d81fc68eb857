"""Restore of checkpoint archives read from untrusted storage.

Whoever can write to the store can plant an archive, so ``unpack`` trusts nothing in it:

1. Every header is checked before anything is written (``check_members``): names are relative
   without ``..``; only regular files, folders, symbolic and hard links; no name twice; nothing
   written through a symbolic link of the archive; a hard link names an earlier regular file;
   a symbolic link's target is relative; names and targets are at most 256 folders deep; each
   header comes after the one before (a negative size sends tarfile back to read an earlier
   header forever); and the bytes the members would write — sparse members
   by their full size, hard links by their target's, as ``folder_size`` counts them on the next
   save — stay within ``max_size``.
2. Into an empty staging folder next to the target go the folders, regular files and hard links,
   in archive order, while the tree holds no symbolic link at all: every path then resolves as
   it is written. Each file is created anew (``O_EXCL | O_NOFOLLOW``) and its bytes are counted
   as they are streamed; the restore stops at ``max_size``.
3. Symbolic links are created last, so nothing is ever written through one.
4. Each symbolic link is then resolved in the finished tree, one component at a time as the
   kernel does, and the archive is refused if a resolution steps above the staging folder at
   any point. Checking each link when it is created (what the ``data`` filter does) is not
   enough: ``state.json -> A/B/../..`` is harmless until ``A -> .`` and ``B -> .`` exist.
   All the resolutions of one archive together may take at most 200,000 steps.
   Because no resolution may leave the folder even for a moment, the verdict does not depend on
   the staging folder's name and holds once the folder is renamed into place.
5. Only then does the staging folder replace the target, whole.

The standard library's ``data`` filter still runs on every member as a second line of defence.
Compressed archives are refused: ``pack`` never writes one, and a small compressed archive can
stand for a huge one (a gzip bomb) that would cost time to even list.
"""
from __future__ import annotations

import errno
import logging
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gridhpo.checkpoints._base import RefusedCheckpointError
from gridhpo.checkpoints.archive import human_size
from gridhpo.errors import CheckpointError

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 1 << 30  # evaluation.checkpoint.max_size when the task file sets none
_MAX_NAME = 4096  # PATH_MAX: longer names or link targets cannot be created anyway
_MAX_HOPS = 40  # symbolic links followed in one resolution, as Linux allows
# folders in a member's name or a link's target: far beyond any checkpoint, and what keeps the
# work bounded (os.makedirs recurses per level: 1000 levels raised RecursionError; every prefix
# of a 2000-level name was looked up, for each member)
_MAX_DEPTH = 256
# path components resolved for all the links of one archive together: each resolution is
# bounded (40 hops of at most 256 components), and their sum is too (links planted to be
# resolved again and again, 64,000 lstat calls each, held a restore for hours)
_MAX_STEPS = 200_000
_CHUNK = 1 << 20
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def tarfile_is_patched() -> bool:
    """Whether this Python's tarfile parses pax headers in linear time (CVE-2024-6232, fixed in
    3.11.10, 3.12.6 and 3.13): on an older one a planted header holds a restore (docs/checkpoints.md)."""
    v = sys.version_info
    return v >= (3, 13) or (v[:2] == (3, 12) and v >= (3, 12, 6)) or (v[:2] == (3, 11) and v >= (3, 11, 10))


class UnsafeArchiveError(RefusedCheckpointError):
    """An archive with a member that would write outside its folder or create a device."""


class ArchiveTooLargeError(RefusedCheckpointError):
    """An archive that would write more than ``evaluation.checkpoint.max_size``."""


@dataclass(frozen=True)
class Plan:
    """What ``check_members`` found: members in extraction order, and the bytes they write."""

    first: list[tarfile.TarInfo]  # folders, regular files, hard links (archive order)
    links: list[tarfile.TarInfo]  # symbolic links, created last
    size: int


def _refuse(source: str, name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{source}: member {name!r} {why}: refused")


def _check_name(m: tarfile.TarInfo, source: str) -> str:
    """The member's normalised relative name, or UnsafeArchiveError."""
    name = m.name
    if len(name) > _MAX_NAME or len(m.linkname) > _MAX_NAME:
        raise _refuse(source, name[:80], "has a name or link target longer than 4096 characters")
    if "\0" in name or "\0" in m.linkname:
        raise _refuse(source, name, "has a NUL character in its name or link target")
    if name.startswith("/") or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise _refuse(source, name, "has an absolute path")
    norm = posixpath.normpath(name)
    if ".." in name.split("/") or norm.startswith(".."):
        raise _refuse(source, name, "goes up with '..'")
    if norm.count("/") >= _MAX_DEPTH or m.linkname.count("/") >= _MAX_DEPTH:
        raise _refuse(source, name[:80], f"has a name or link target deeper than {_MAX_DEPTH} folders")
    return norm


def _headers(tar: tarfile.TarFile, source: str) -> Iterator[tarfile.TarInfo]:
    """The members, one header at a time, each after the one before. A negative size (a pax
    ``size`` record of -1536) sends tarfile back to an earlier header, which it reads again and
    again, keeping every copy: a planted archive of 4 KiB held a pilot forever with its memory
    growing. Refused at the first header that does not move forward."""
    last = -1
    while (m := tar.next()) is not None:
        if m.size < 0:
            raise _refuse(source, m.name[:80], f"has a negative size ({m.size})")
        if m.offset <= last:
            raise _refuse(source, m.name[:80], "has a header that goes back in the archive")
        last = m.offset
        yield m


def check_members(tar: tarfile.TarFile, source: str, max_size: int = DEFAULT_MAX_SIZE) -> Plan:
    """The extraction plan, or UnsafeArchiveError / ArchiveTooLargeError naming the first bad member."""
    first: list[tarfile.TarInfo] = []
    links: list[tarfile.TarInfo] = []
    files: dict[str, int] = {}  # regular files so far -> size, for hard links
    seen: set[str] = set()
    total = 0
    for m in _headers(tar, source):
        norm = _check_name(m, source)
        if m.isdev() or m.isfifo():
            raise _refuse(source, m.name, "is a device or FIFO")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise _refuse(source, m.name, f"has unsupported type {m.type!r}")
        if norm == ".":
            if not m.isdir():
                raise _refuse(source, m.name, "names the folder itself but is not a folder")
            continue
        if norm in seen:
            raise _refuse(source, m.name, "appears twice")
        seen.add(norm)
        if m.issym():
            target = m.linkname
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(norm), target))
            if not target or target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise UnsafeArchiveError(f"{source}: symbolic link {m.name!r} -> {target!r} points outside: refused")
            links.append(m)
            total += len(target.encode())
        elif m.islnk():
            target = posixpath.normpath(m.linkname)
            if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                raise UnsafeArchiveError(f"{source}: hard link {m.name!r} -> {m.linkname!r} points outside: refused")
            if target not in files:
                raise UnsafeArchiveError(f"{source}: hard link {m.name!r} -> {m.linkname!r} does not name an "
                                         "earlier regular file of the archive: refused")
            first.append(m)
            total += files[target]
        else:
            if m.isfile():
                files[norm] = m.size  # a sparse member's size is its full size, holes included
                total += m.size
            first.append(m)
        if total > max_size:
            raise ArchiveTooLargeError(
                f"{source}: would write over {human_size(total)} by member {m.name!r}, over "
                f"evaluation.checkpoint.max_size ({human_size(max_size)}): refused")
    _check_link_chains(first + links, {posixpath.normpath(m.name) for m in links}, source)
    return Plan(first, links, total)


def _check_link_chains(members: list[tarfile.TarInfo], links: set[str], source: str) -> None:
    """A member written through a symlinked folder of the same archive could escape: refuse."""
    if not links:
        return
    for m in members:
        parts = posixpath.normpath(m.name).split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise UnsafeArchiveError(f"{source}: member {m.name!r} is written through the symbolic link "
                                         f"{'/'.join(parts[:i])!r}: refused")


class Steps:
    """What link resolutions may still cost, shared by all the links of one archive."""

    def __init__(self, most: int = _MAX_STEPS) -> None:
        self.left = most


def stays_inside(root: Path, rel: str, steps: Steps | None = None) -> bool:
    """Whether resolving ``root/rel`` never steps above ``root``, following symbolic links.

    Components are resolved one at a time as the kernel does. A component that does not exist
    (yet) ends link following for it, and the rest is taken literally: ``missing/../..`` is
    still a step above ``root``. Past the ``steps`` budget the answer is no.
    """
    steps = steps or Steps()
    pending = [p for p in reversed(rel.split("/"))]
    stack: list[str] = []
    hops = 0
    while pending:
        steps.left -= 1
        if steps.left < 0:
            return False
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return False
            stack.pop()
            continue
        try:
            st = os.lstat(os.path.join(root, *stack, part))
        except (FileNotFoundError, NotADirectoryError):
            stack.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            stack.append(part)
            continue
        hops += 1
        target = os.readlink(os.path.join(root, *stack, part))
        if hops > _MAX_HOPS or target.startswith("/"):
            return False
        pending.extend(reversed(target.split("/")))
    return True


def _write_file(tar: tarfile.TarFile, m: tarfile.TarInfo, path: str, budget: int, source: str) -> int:
    """Stream a regular member to a new file, counting bytes; ArchiveTooLargeError past ``budget``."""
    src = tar.extractfile(m)
    if src is None:
        raise RefusedCheckpointError(f"{source}: member {m.name!r} has no data")
    mode = 0o600 if m.mode is None else m.mode  # already limited by the data filter
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with src, os.fdopen(fd, "wb") as out:
        # reads ask for at most one byte more than the budget allows: the byte that proves
        # the member too large is read but never written
        while chunk := src.read(min(_CHUNK, budget - written + 1)):
            if written + len(chunk) > budget:
                raise ArchiveTooLargeError(f"{source}: member {m.name!r} writes more than the "
                                           f"{human_size(budget)} left of evaluation.checkpoint.max_size: refused")
            out.write(chunk)
            written += len(chunk)
    if written != m.size:
        raise RefusedCheckpointError(f"{source}: member {m.name!r} holds {written} bytes, its header says {m.size}")
    os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
    return written


def _extract(tar: tarfile.TarFile, plan: Plan, staging: Path, max_size: int, source: str) -> None:
    root = str(staging)
    written = 0
    for m in plan.first:
        m = tarfile.data_filter(m, root)  # second line of defence; raises FilterError, limits modes
        path = os.path.join(root, posixpath.normpath(m.name))
        os.makedirs(os.path.dirname(path), exist_ok=True)  # no symbolic link exists yet
        if m.isdir():
            os.makedirs(path, exist_ok=True)
        elif m.islnk():
            os.link(os.path.join(root, posixpath.normpath(m.linkname)), path, follow_symlinks=False)
        else:
            written += _write_file(tar, m, path, max_size - written, source)
    for m in plan.links:
        tarfile.data_filter(m, root)
        path = os.path.join(root, posixpath.normpath(m.name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(m.linkname, path)
    steps = Steps()
    for m in plan.links:
        if not stays_inside(staging, posixpath.normpath(m.name), steps):
            why = ("resolves outside the folder through the archive's other links" if steps.left >= 0 else
                   f"and the archive's other links take over {_MAX_STEPS} steps to resolve")
            raise UnsafeArchiveError(f"{source}: symbolic link {m.name!r} -> {m.linkname[:80]!r} {why}: refused")


def _compression(archive: Path) -> str | None:
    with archive.open("rb") as f:
        head = f.read(8)
    return next((name for magic, name in _COMPRESSED.items() if head.startswith(magic)), None)


def unpack(archive: Path, dest: Path, source: str = "checkpoint archive", max_size: int = DEFAULT_MAX_SIZE) -> None:
    """Restore ``archive`` as the folder ``dest`` (replaced whole, only once all is checked)."""
    staging = dest.parent / f".{dest.name}.restore-{uuid.uuid4().hex[:8]}"
    try:
        compression = _compression(archive)
        if compression is not None:
            raise RefusedCheckpointError(f"{source}: a {compression}-compressed archive; checkpoints are "
                                         "uncompressed tar archives: refused")
        with tarfile.open(archive, "r:") as tar:
            plan = check_members(tar, source, max_size)
            staging.mkdir()
            _extract(tar, plan, staging, max_size, source)
    except RefusedCheckpointError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except tarfile.FilterError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnsafeArchiveError(f"{source}: {exc}: refused") from exc
    except (OSError, tarfile.TarError, EOFError, ValueError, OverflowError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # this pilot's disk, not the checkpoint: another pilot may restore it
            raise CheckpointError(f"{source}: no space left to restore it within "
                                  f"{human_size(max_size)}: {exc}") from exc
        raise RefusedCheckpointError(f"{source}: not a readable tar archive: {exc}") from exc
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(staging, dest)
