"""phpo's checkPointToSave and checkPointToLoad (``evaluation.checkpoint.save``/``load``): a list of
files and folders of the work directory checkpointed instead of the ``checkpoint/`` folder.

The pilot's checkpoint machinery (``evaluation/checkpointing.py``: interval, change detection,
signed manifest, retention, final upload before a stop is reported, verified restore) archives
one folder. For a save list that folder is a staging copy: at each upload the listed paths are
copied into ``.gridhpo-save/`` at their relative places (links kept as links) and archived from
there; the copy is removed afterwards. Change detection looks at the listed paths themselves, so
a file the evaluation replaces (write and rename, as Keras does) counts as changed.

A retry restores the newest checkpoint into ``.gridhpo-restore/`` and then, as phpo does, either
puts each saved file and folder back at its name in the work directory, or, with ``load``, packs
them into the tarball of that name (compressed as its name says: ``.tgz`` gzip, ``.tar`` none) for
the evaluation to open itself.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Literal

from gridhpo.checkpoints.archive import CheckpointTooLargeError, fingerprint, human_size
from gridhpo.errors import CheckpointError

log = logging.getLogger(__name__)
STAGE = ".gridhpo-save"
RESTORE = ".gridhpo-restore"
Fingerprint = tuple[tuple[str, int, int], ...]


def paths_fingerprint(workdir: Path, paths: list[str]) -> Fingerprint:
    """(path, size, mtime) of every listed file and of everything inside every listed folder."""
    out: list[tuple[str, int, int]] = []
    for rel in paths:
        p = workdir / rel
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        out.append((rel, st.st_size, st.st_mtime_ns))
        if stat.S_ISDIR(st.st_mode):
            out += [(f"{rel}/{name}", size, mtime) for name, size, mtime in fingerprint(p)]
    return tuple(sorted(out))


def check_size(fp: Fingerprint, max_size: int) -> None:
    size = sum(s for _, s, _ in fp)
    if size > max_size:
        raise CheckpointTooLargeError(
            f"evaluation.checkpoint.save (checkPointToSave) holds {human_size(size)}, over "
            f"evaluation.checkpoint.max_size ({human_size(max_size)}): save less or raise the limit")


def stage(workdir: Path, paths: list[str]) -> Path:
    """A fresh copy of the listed paths in ``workdir/.gridhpo-save``; the caller removes it."""
    dest = workdir / STAGE
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    for rel in paths:
        src, target = workdir / rel, dest / rel
        if not os.path.lexists(src):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if src.is_dir() and not src.is_symlink():
                shutil.copytree(src, target, symlinks=True)
            else:
                shutil.copy2(src, target, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed by the evaluation while copied: the archive is vetoed as changed
        except OSError as exc:
            # copytree gathers each file's error (shutil.Error): files the evaluation renamed away
            # while the folder was copied (a `.tmp` saved then moved into place) are a change, which
            # vetoes the archive; anything else (a named pipe, an unreadable file) is a checkpoint that
            # cannot be made, logged and tried again, never a pilot crash
            failed = [str(e[0]) for e in exc.args[0]] if isinstance(exc, shutil.Error) else []
            if failed and not any(os.path.lexists(f) for f in failed):
                continue
            raise CheckpointError(f"evaluation.checkpoint.save: {rel} could not be copied: {exc}") from exc
    return dest


def install(workdir: Path, restored: Path, load: str | None) -> None:
    """Put what a checkpoint restored into ``restored`` in place: at the saved names, or as the
    tarball ``load``. An entry whose name is taken in the fresh work directory (the pilot's own
    files) is left out, with a warning."""
    entries = sorted(os.listdir(restored))
    if load is not None:
        with tarfile.open(workdir / load, tar_mode(load)) as tar:
            for name in entries:
                tar.add(restored / name, arcname=name, recursive=True)
        return
    for name in entries:
        if os.path.lexists(workdir / name):
            log.warning("checkpoint entry %s not restored: the work directory has one already", name)
            continue
        os.replace(restored / name, workdir / name)


def tar_mode(name: str) -> Literal["w", "w:gz", "w:bz2", "w:xz"]:
    """The tarball as its name says: ``.tgz``/``.tar.gz`` gzip, ``.bz2``, ``.xz``, else a plain tar
    (compressing model weights costs far more time than it saves: 8 s for 100 MB, benchmarks/savelist.py)."""
    if name.endswith((".tgz", ".gz")):
        return "w:gz"
    if name.endswith((".tbz2", ".bz2")):
        return "w:bz2"
    if name.endswith((".txz", ".xz")):
        return "w:xz"
    return "w"


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
