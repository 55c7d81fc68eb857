"""Where the ATLAS contract's metadata and metrics files of each attempt are kept, and their download.

The pilot uploads them (``gridhpo.evaluation.artifacts``) to the task's checkpoint store, beside
its checkpoints but outside every point's checkpoint prefix (so checkpoint retention never
touches them):

    <task-id>-<task-name>/artifacts/point-<number>/attempt-<attempt>/<file name>

The store is their record: ``gridhpo results TASK --artifacts DIR`` lists that prefix and
downloads each object to ``DIR/point-<number>/attempt-<attempt>/<file name>``.
"""
from __future__ import annotations

import re
from pathlib import Path

from gridhpo.checkpoints._base import ObjectStore
from gridhpo.errors import CheckpointError

MAX_META_BYTES = 1 << 20  # evaluationMeta: "the size must be less than 1MB" (iDDS)
MAX_METRICS_BYTES = 1 << 30  # evaluationMetrics: uploaded as it is, so larger; still bounded
_KEY = re.compile(r"point-(\d+)/attempt-(\d+)/([^/]+)")


def task_prefix(task_id: int, task_name: str) -> str:
    return f"{task_id}-{task_name}/artifacts/"


def artifact_key(task_id: int, task_name: str, number: int, attempt: int, name: str) -> str:
    return f"{task_prefix(task_id, task_name)}point-{number}/attempt-{attempt}/{name}"


def download(store: ObjectStore, task_id: int, task_name: str, dest: Path) -> list[Path]:
    """Every kept file of the task into ``dest``; returns the paths written. A key that is not
    of the layout above (someone else's object under the prefix) is skipped."""
    prefix = task_prefix(task_id, task_name)
    written: list[Path] = []
    for key in store.list(prefix):
        m = _KEY.fullmatch(key[len(prefix):])
        if m is None or m.group(3) in (".", ".."):
            continue
        path = dest / f"point-{int(m.group(1))}" / f"attempt-{int(m.group(2))}" / m.group(3)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create {path.parent}: {exc.strerror}") from None
        store.get(key, path, max_bytes=MAX_METRICS_BYTES + (1 << 20))
        written.append(path)
    return written


__all__ = ["MAX_META_BYTES", "MAX_METRICS_BYTES", "artifact_key", "download", "task_prefix"]
