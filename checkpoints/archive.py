"""Checkpoint folders as tar archives.

``pack`` writes an uncompressed tar (model weights rarely compress, and gzip would cost
more time than the upload it saves). Their restore from untrusted storage is in
``gridhpo.checkpoints.extract``.
"""
from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from gridhpo.checkpoints._base import RefusedCheckpointError
from gridhpo.errors import CheckpointError

log = logging.getLogger(__name__)


class CheckpointTooLargeError(CheckpointError):
    """A checkpoint folder over ``evaluation.checkpoint.max_size``."""


def _walk(folder: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk, with a folder nested too deep for it (it recurses per level) as our error: an
    evaluation's checkpoint/ 1000 folders deep made the pilot crash with RecursionError."""
    try:
        yield from os.walk(folder)
    except RecursionError:
        raise CheckpointError(f"{folder.name}/ is nested too deep to archive (about 1000 folders)") from None


def folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in _walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue  # removed by the evaluation while we walk
    return total


def fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of every entry: changes whenever the evaluation writes a file."""
    out = []
    for dirpath, dirs, files in _walk(folder):
        for name in sorted(files + dirs):
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            out.append((os.path.relpath(p, folder), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def archive_limit(max_size: int) -> int:
    """The largest archive of a folder within ``max_size`` that a restore downloads.

    Tar adds about 1.5 kB of headers per entry (a PAX header each, for the sub-second mtime);
    twice the folder's limit plus a megabyte leaves room for a thousand files per megabyte of
    the limit. ``pack`` refuses to upload a larger archive, so both sides agree."""
    return 2 * max_size + (1 << 20)


def pack(folder: Path, dest: Path, max_size: int, what: str = "checkpoint/") -> int:
    """Archive the contents of ``folder`` into ``dest``; returns the archive's size."""
    size = folder_size(folder)
    if size > max_size:
        raise CheckpointTooLargeError(
            f"{what} holds {human_size(size)}, over evaluation.checkpoint.max_size ({human_size(max_size)}): "
            "save less state or raise the limit in the task file")
    try:
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(os.listdir(folder)):
                tar.add(folder / entry, arcname=entry, recursive=True)
    except (OSError, tarfile.TarError) as exc:
        raise CheckpointError(f"cannot archive {what}: {exc}") from exc
    except RecursionError:  # tarfile's add recurses per level too
        raise CheckpointError(f"cannot archive {what}: it is nested too deep (about 1000 folders)") from None
    archived = dest.stat().st_size
    if archived > archive_limit(max_size):
        raise CheckpointTooLargeError(
            f"{what} archives to {human_size(archived)}, over the {human_size(archive_limit(max_size))} a restore "
            f"accepts with evaluation.checkpoint.max_size ({human_size(max_size)}): it holds too many small "
            "files; keep fewer, larger files or raise the limit in the task file")
    return archived


__all__ = ["CheckpointTooLargeError", "RefusedCheckpointError", "archive_limit", "fingerprint", "folder_size",
           "human_size", "pack"]
