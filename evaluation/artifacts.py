"""The pilot's side of the ATLAS contract's metadata and metrics files (``evaluation.files.meta``,
``evaluation.files.metrics``; phpo's evaluationMeta and evaluationMetrics).

When an attempt's evaluation has ended by itself (finished or failed; not when the pilot stopped
it at its walltime or on an early stop, with no time to spare), each of the two that exists in
the work directory is uploaded to the task's checkpoint store, per attempt
(layout in ``gridhpo.checkpoints.artifacts``). Like output.json they are untrusted: read only as
regular files of the work directory (never through a symbolic link, never a FIFO or a file with
other hard links); the metadata must be a JSON object of at most 1 MiB (iDDS's limit), the
metrics file at most 1 GiB. A metrics *folder* (runHPO tars whatever the name is) is uploaded as
``<name>.tgz``, its links kept as links. A file that breaks a rule, or an upload that fails, is
skipped with a warning: the point's result stands (runHPO does the same).
"""
from __future__ import annotations

import logging
import os
import stat
import tarfile
from pathlib import Path

from gridhpo.checkpoints import ObjectStore
from gridhpo.checkpoints.archive import folder_size
from gridhpo.checkpoints.artifacts import MAX_META_BYTES, MAX_METRICS_BYTES, artifact_key
from gridhpo.errors import CheckpointError
from gridhpo.evaluation.outputs import OutputError, parse_json, read_regular
from gridhpo.protocol import PointMessage

log = logging.getLogger(__name__)


def collect(store: ObjectStore, msg: PointMessage, workdir: Path) -> list[str]:
    """Upload the attempt's metadata and metrics files; returns the keys written."""
    files = msg.evaluation.files
    keys: list[str] = []
    for name, make in ((files.meta, _meta), (files.metrics, _metrics)):
        if name is None:
            continue
        tmp = workdir / f".artifact-{name}"
        try:
            stored = make(workdir, name, tmp)
            if stored is None:
                continue
            key = artifact_key(msg.task_id, msg.task_name, msg.number, msg.attempt, stored)
            store.put(key, tmp)
            keys.append(key)
            log.info("point %d attempt %d: %s kept (%s)", msg.number, msg.attempt, name, key)
        except (OutputError, CheckpointError, OSError, tarfile.TarError) as exc:
            log.warning("point %d attempt %d: %s not kept: %s", msg.number, msg.attempt, name, exc)
        finally:
            tmp.unlink(missing_ok=True)
    return keys


def _meta(workdir: Path, name: str, tmp: Path) -> str | None:
    raw = read_regular(workdir, name, MAX_META_BYTES + 1)
    if raw is None:
        return None
    if len(raw) > MAX_META_BYTES:
        raise OutputError(f"larger than {MAX_META_BYTES} bytes (the metadata file's limit)")
    if not isinstance(parse_json(raw, name), dict):
        raise OutputError("not a JSON object")
    tmp.write_bytes(raw)
    return name


def _metrics(workdir: Path, name: str, tmp: Path) -> str | None:
    path = workdir / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        if folder_size(path) > MAX_METRICS_BYTES:
            raise OutputError(f"the folder holds more than {MAX_METRICS_BYTES} bytes")
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(path, arcname=name, recursive=True)  # links archived as links, never followed
        return f"{name}.tgz"
    _copy_regular(workdir, name, tmp)
    return name


def _copy_regular(workdir: Path, name: str, dest: Path) -> None:
    """The file's bytes into ``dest``, read as ``read_regular`` reads (a chunk at a time)."""
    offset = 0
    with dest.open("wb") as out:
        while True:
            chunk = read_regular(workdir, name, 1 << 20, offset)
            if not chunk:
                return
            offset += len(chunk)
            if offset > MAX_METRICS_BYTES:
                raise OutputError(f"larger than {MAX_METRICS_BYTES} bytes (the metrics file's limit)")
            out.write(chunk)
