"""The local-folder store (``file:///path``): the default, and the one shared file systems use.

``put`` writes a temporary file next to the target and renames it into place, so on one
file system an object appears whole or not at all. Temporary files are never listed.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gridhpo.checkpoints._base import CorruptObjectError, MissingObjectError, ObjectStore, check_key, too_large
from gridhpo.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)
_TMP = ".gridhpo-tmp-"
_CHUNK = 1 << 20


class LocalStore(ObjectStore):
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigError(f"store URL {url!r}: a local store is file:///absolute/path")
        self.url = url
        self.root = Path(unquote(parts.path))
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"store {url}: cannot create the folder ({exc.strerror})") from exc

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, path: Path) -> None:
        target = self._path(key)
        tmp = target.parent / f"{_TMP}{uuid.uuid4().hex}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, tmp)
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise CheckpointError(f"store {self.url}: cannot write {key} ({exc})") from exc

    def get(self, key: str, path: Path, max_bytes: int | None = None) -> None:
        src = self._path(key)
        try:
            # no following a final symbolic link (to /dev/zero, say) and no blocking on a FIFO:
            # what is not a regular file cannot be an object put() wrote
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise MissingObjectError(f"store {self.url}: no object {key}") from exc
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENOTDIR):
                raise CorruptObjectError(f"store {self.url}: object {key} is not a regular file "
                                         f"({exc.strerror})") from exc
            raise CheckpointError(f"store {self.url}: cannot read {key} ({exc})") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                raise CorruptObjectError(f"store {self.url}: object {key} is not a regular file")
            if max_bytes is not None and st.st_size > max_bytes:
                os.close(fd)
                raise too_large(self.url, key, max_bytes)
            with os.fdopen(fd, "rb") as f, path.open("wb") as out:
                left = st.st_size if max_bytes is None else max_bytes
                while left > 0 and (chunk := f.read(min(_CHUNK, left))):
                    out.write(chunk)
                    left -= len(chunk)
                if max_bytes is not None and left == 0 and f.read(1):
                    raise too_large(self.url, key, max_bytes)  # grew while read
                elif max_bytes is None:
                    shutil.copyfileobj(f, out)  # the rest, if it grew while read
        except OSError as exc:
            raise CheckpointError(f"store {self.url}: cannot read {key} ({exc})") from exc

    def copy(self, src: str, dst: str, max_bytes: int | None = None) -> None:
        # read with get()'s checks straight into a temporary name beside the target, then
        # rename: one copy of the bytes, and no reader sees a partial object
        target = self._path(dst)
        tmp = target.parent / f"{_TMP}{uuid.uuid4().hex}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.get(src, tmp, max_bytes)
            os.replace(tmp, target)
        except OSError as exc:
            raise CheckpointError(f"store {self.url}: cannot copy {src} to {dst} ({exc})") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        # walk only the deepest folder the prefix names, not the whole store
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        out = []

        def fail(exc: OSError) -> None:
            # a prefix nothing was written under yet, or a file where a folder should be
            if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                raise exc

        try:
            for dirpath, _dirs, files in os.walk(base, onerror=fail):
                for name in files:
                    if name.startswith(_TMP):
                        continue
                    key = Path(dirpath, name).relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        out.append(key)
        except OSError as exc:
            raise CheckpointError(f"store {self.url}: cannot list {prefix!r} ({exc})") from exc
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise CheckpointError(f"store {self.url}: cannot delete {key} ({exc})") from exc
