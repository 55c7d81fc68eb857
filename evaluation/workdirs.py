"""Work directories: one per attempt, holding what the evaluation reads and writes: the point
(``evaluation.files.input``, input.json), the training data list when the task has one
(``files.training_data``, input_ds.json) and gridhpo.json (the attempt's context and file names).

A finished attempt's directory is removed (unless ``--keep-workdirs``). Those of failed or
interrupted attempts are kept to look into, within a retention limit: at most
``keep_failed`` directories (``--keep-failed``, default 20) and ``keep_failed_bytes`` in
total (``--keep-failed-size``, default 1 GiB); beyond either, the oldest are removed first.
The pilot counts those it finds in its work root when it starts, so a pilot restarted with
the same ``--workdir`` and ``--pilot-id`` does not let them pile up.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from gridhpo.errors import ConfigError
from gridhpo.evaluation.runtimes._base import Job

if TYPE_CHECKING:  # the CLI imports this module for its defaults: no kombu at its start
    from gridhpo.evaluation.settings import AttemptSettings
    from gridhpo.protocol import PointMessage

log = logging.getLogger(__name__)
KEEP_FAILED = 20
KEEP_FAILED_BYTES = 1 << 30
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, where: str) -> int:
    """Bytes from ``500M``, ``2G``, ``1024`` (binary units, an optional trailing B)."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in _SIZE_UNITS and t[-1:] else ""
    number = t[: len(t) - len(unit)].strip()
    if not number.isdigit():
        raise ConfigError(f"{where}: {text!r} is not a size (e.g. 1024, 500M, 2G)")
    return int(number) * _SIZE_UNITS[unit]


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (symbolic links not followed)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


class Workdirs:
    """The work directories of one pilot, under ``root``."""

    def __init__(self, root: Path, pilot_id: str, site: str, keep_failed: int = KEEP_FAILED,
                 keep_failed_bytes: int = KEEP_FAILED_BYTES) -> None:
        self.root = root
        self.pilot_id = pilot_id
        self.site = site
        self.keep_failed = keep_failed
        self.keep_failed_bytes = keep_failed_bytes
        self._kept: deque[tuple[Path, int]] | None = None  # oldest first, with their sizes

    def prepare(self, msg: PointMessage, ev: AttemptSettings) -> Job:
        """A fresh work directory with input.json and gridhpo.json, and the Job to run there.
        Raises OSError (a full disk: ENOSPC) for the pilot to report as the site's problem."""
        workdir = self.root / f"task-{msg.task_id}" / f"point-{msg.number}-attempt-{msg.attempt}"
        if workdir.exists():
            shutil.rmtree(workdir)
        (workdir / "checkpoint").mkdir(parents=True)
        wire = msg.to_json()  # the objective and budget as the evaluation reads them in gridhpo.json
        files = msg.evaluation.files  # the ATLAS contract's names (evaluation.files)
        paths = {"input": files.input, "output": files.output, "metrics": "metrics.jsonl", "checkpoint": "checkpoint"}
        if msg.evaluation.training_data is not None:
            paths["training_data"] = files.training_data
        context = {
            "task_id": msg.task_id, "task_name": msg.task_name, "point_id": msg.point_id, "number": msg.number,
            "attempt": msg.attempt, "pilot_id": self.pilot_id, "site": self.site,
            "objective": wire["objective"], "budget": wire["budget"], "workdir": str(workdir), "paths": paths,
        }
        try:
            (workdir / files.input).write_text(json.dumps(msg.params, indent=1))
            if msg.evaluation.training_data is not None:
                # as runHPO writes input_ds.json: a JSON list of the training files' names
                (workdir / files.training_data).write_text(json.dumps(msg.evaluation.training_data))
            (workdir / "gridhpo.json").write_text(json.dumps(context, indent=1))
        except OSError:
            shutil.rmtree(workdir, ignore_errors=True)  # half a work directory helps nobody
            raise
        env = dict(ev.env)
        env.update({
            "GRIDHPO_WORKDIR": str(workdir), "GRIDHPO_TASK_ID": str(msg.task_id),
            "GRIDHPO_POINT": str(msg.number), "GRIDHPO_ATTEMPT": str(msg.attempt),
            "GRIDHPO_PILOT_ID": self.pilot_id, "GRIDHPO_SITE": self.site,
        })
        if ev.source_dir:
            env["GRIDHPO_TASK_DIR"] = ev.source_dir
        return Job(workdir=workdir, command=ev.command, image=ev.image, python=ev.python, source_dir=ev.source_dir,
                   env=env, resources=ev.resources, params=msg.params,
                   name=f"gridhpo-{msg.task_id}-{msg.number}-{msg.attempt}-{self.pilot_id}")

    def ended(self, job: Job, finished: bool, keep: bool) -> None:
        """The attempt in ``job.workdir`` is over: remove its directory if it finished, else keep
        it within the retention limits. ``keep`` (--keep-workdirs) keeps every one."""
        if keep:
            return
        if finished:
            shutil.rmtree(job.workdir, ignore_errors=True)
            return
        kept = self._existing()
        for entry in [e for e in kept if e[0] == job.workdir]:  # found by the first scan already
            kept.remove(entry)
        kept.append((job.workdir, tree_size(job.workdir)))
        total = sum(size for _, size in kept)
        while kept and (len(kept) > self.keep_failed or total > self.keep_failed_bytes):
            path, size = kept.popleft()
            log.info("removing the work directory %s (%d bytes) of a failed attempt: over --keep-failed %d / "
                     "--keep-failed-size %d", path, size, self.keep_failed, self.keep_failed_bytes)
            shutil.rmtree(path, ignore_errors=True)
            total -= size

    def _existing(self) -> deque[tuple[Path, int]]:
        """The attempt directories already under the root (from an earlier run), oldest first."""
        if self._kept is None:
            found = [p for p in self.root.glob("task-*/point-*-attempt-*") if p.is_dir() and not p.is_symlink()]
            found.sort(key=lambda p: p.stat().st_mtime)
            self._kept = deque((p, tree_size(p)) for p in found)
        return self._kept
