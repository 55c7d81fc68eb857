"""The local-folder store (``file:///path``): the default, and the one shared file systems use.

``put`` writes a temporary file next to the target and renames it into place, so on one
file system an object appears whole or not at all. Temporary files are never listed.
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gridhpo.checkpoints._base import MissingObjectError, ObjectStore, check_key
from gridhpo.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)
_TMP = ".gridhpo-tmp-"


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

    def get(self, key: str, path: Path) -> None:
        src = self._path(key)
        try:
            shutil.copyfile(src, path)
        except FileNotFoundError as exc:
            raise MissingObjectError(f"store {self.url}: no object {key}") from exc
        except OSError as exc:
            raise CheckpointError(f"store {self.url}: cannot read {key} ({exc})") from exc

    def list(self, prefix: str = "") -> list[str]:
        # walk only the deepest folder the prefix names, not the whole store
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        out = []

        def fail(exc: OSError) -> None:
            if not isinstance(exc, FileNotFoundError):  # a prefix nothing was written under yet
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
