"""The pilot's side of checkpoints: restore before an attempt, upload while and after it runs.

Before an attempt starts, the newest checkpoint of its point that verifies is restored into
``checkpoint/`` (falling back to older ones, with a warning, past any that do not). While
the evaluation runs, ``checkpoint/`` is uploaded every ``evaluation.checkpoint.interval`` if
it changed; when the pilot stops the evaluation (walltime, SIGTERM, early stop, pause) it is
uploaded once more, before the pilot reports the stop, so that the retry — possibly on
another pilot a moment later — finds it. Each upload and each restore is reported as a
``checkpoint`` event (``restored: true`` for the one an attempt started from).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridhpo import config
from gridhpo.checkpoints import ObjectStore, open_store
from gridhpo.checkpoints.archive import CheckpointTooLargeError, fingerprint
from gridhpo.checkpoints.manifest import Entry, Manifest, point_prefix
from gridhpo.errors import CheckpointError, ConfigError
from gridhpo.evaluation import artifacts, environment, savelist
from gridhpo.protocol import PointMessage
from gridhpo.protocol.evaluation import EvaluationSpec

log = logging.getLogger(__name__)
Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Settings:
    store_url: str
    interval: float
    keep: int
    max_size: int
    signing_key: bytes | None
    save: tuple[str, ...] = ()  # checkPointToSave: these paths instead of checkpoint/ (evaluation/savelist.py)
    load: str | None = None  # checkPointToLoad: restored as this tarball

    @classmethod
    def of(cls, evaluation: EvaluationSpec, pilot_store: str | None) -> Settings:
        """The pilot's ``--store`` wins, then the task file's store, then GRIDHPO_STORE / the default."""
        c = evaluation.checkpoint
        url = pilot_store or c.store or config.store_url(None)
        key = c.signing_key
        environment.register_url(url)
        secret: bytes | None = None
        if key:
            if str(key).startswith("env:"):
                name = str(key)[4:]
                value = os.environ.get(name)
                if not value:
                    raise ConfigError(f"evaluation.checkpoint.signing_key: environment variable {name} "
                                      "is not set on this pilot")
                secret = value.encode()
                environment.register_secret(value)  # and so no evaluation gets variable NAME
            else:
                secret = str(key).encode()
        return cls(url, c.interval, c.keep, c.max_size, secret, tuple(c.save), c.load)


class PointCheckpoints:
    """Checkpoints of the attempt a pilot runs now."""

    def __init__(self, store: ObjectStore, settings: Settings, msg: PointMessage, workdir: Path,
                 report: Report) -> None:
        self.settings = settings
        self.msg = msg
        self.folder = workdir / "checkpoint"
        self.workdir = workdir
        self.report = report
        self.manifest = Manifest(store, point_prefix(msg.task_id, msg.task_name, msg.number),
                                 keep=settings.keep, signing_key=settings.signing_key)
        self.restored: Entry | None = None
        self.saved: list[Entry] = []
        self._last_fp = self._fingerprint()
        self._last_upload = time.monotonic()
        self._postponed = False

    def _fingerprint(self) -> savelist.Fingerprint:
        if self.settings.save:
            return savelist.paths_fingerprint(self.workdir, list(self.settings.save))
        return fingerprint(self.folder)

    def restore(self) -> Entry | None:
        skipped: list[dict[str, str]] = []
        dest = self.workdir / savelist.RESTORE if self.settings.save else self.folder
        entry = self.manifest.restore(dest, self.workdir, max_size=self.settings.max_size,
                                      on_skip=lambda k, why: skipped.append({"key": k, "reason": why}),
                                      exact=self.msg.restore)
        if self.settings.save:
            try:
                if entry is not None:
                    savelist.install(self.workdir, dest, self.settings.load)
            finally:
                savelist.remove(dest)
        self._last_fp = self._fingerprint()
        if entry is None and self.msg.restore is not None:
            # a member told to start from another's weights must never run its new config on
            # its own (or fresh) weights: the attempt goes back to the queue
            raise CheckpointError(f"point {self.msg.number} attempt {self.msg.attempt}: the checkpoint it must "
                                  f"start from, {self.msg.restore}, did not restore: "
                                  f"{skipped[0]['reason'] if skipped else 'not found'}")
        if entry is not None:
            self.restored = entry
            log.info("point %d attempt %d starts from checkpoint %s (attempt %d, %d bytes)", self.msg.number,
                     self.msg.attempt, entry.key, entry.attempt, entry.size)
            self.report({**entry.event_data(), "restored": True, "skipped": skipped})
        elif skipped:
            log.warning("point %d attempt %d starts afresh: no checkpoint verified (%d refused)",
                        self.msg.number, self.msg.attempt, len(skipped))
        return entry

    def tick(self) -> None:
        """Upload if the interval has passed and checkpoint/ changed. Raises only for a checkpoint
        over the size limit (the evaluation cannot go on usefully); store errors are logged and
        retried at the next interval."""
        if time.monotonic() - self._last_upload < self.settings.interval:
            return
        self._last_upload = time.monotonic()
        try:
            if self._save(final=False) is None and self._postponed:
                # caught the evaluation writing: try again soon rather than a whole interval later
                self._last_upload -= 0.9 * self.settings.interval
        except CheckpointTooLargeError:
            raise
        except CheckpointError as exc:
            log.warning("point %d: checkpoint upload failed, retried in %.0fs: %s", self.msg.number,
                        self.settings.interval, exc)

    def final(self) -> None:
        """The upload when the evaluation has stopped; a failure is logged, the stop goes on."""
        try:
            self._save(final=True)
        except CheckpointError as exc:
            log.error("point %d attempt %d: final checkpoint upload failed, its retry resumes from an older "
                      "one: %s", self.msg.number, self.msg.attempt, exc)

    def _save(self, final: bool) -> Entry | None:
        fp = self._fingerprint()
        self._postponed = False
        if fp == self._last_fp or not fp:
            return None
        # while the evaluation runs it may be writing: an archive made while checkpoint/
        # changed may be torn, so it is not uploaded and the next interval tries again
        unchanged = None if final else (lambda: self._fingerprint() == fp)
        t0 = time.monotonic()
        folder = self.folder
        if self.settings.save:
            savelist.check_size(fp, self.settings.max_size)
            folder = savelist.stage(self.workdir, list(self.settings.save))
        try:
            entry = self.manifest.save(folder, self.workdir, task=self.msg.task_id, point=self.msg.number,
                                       attempt=self.msg.attempt, max_size=self.settings.max_size,
                                       unchanged=unchanged)
        finally:
            if folder != self.folder:
                savelist.remove(folder)
        self._postponed = entry is None
        if entry is None:
            log.debug("point %d: checkpoint/ changed while archived; upload postponed", self.msg.number)
            return None
        self._last_fp = fp
        self.saved.append(entry)
        log.info("point %d attempt %d: checkpoint %d saved (%d bytes, %.2fs%s)", self.msg.number, self.msg.attempt,
                 entry.sequence, entry.size, time.monotonic() - t0, ", final" if final else "")
        self.report({**entry.event_data(), "restored": False, "final": final})
        return entry


class PilotCheckpoints:
    """One pilot's stores (opened once per URL) and the checkpoints of its current attempt."""

    def __init__(self, pilot_store: str | None) -> None:
        self.pilot_store = pilot_store
        self._stores: dict[str, ObjectStore] = {}
        self.current: PointCheckpoints | None = None

    def store(self, settings: Settings) -> ObjectStore:
        store = self._stores.get(settings.store_url)
        if store is None:
            store = self._stores[settings.store_url] = open_store(settings.store_url)
        return store

    def begin(self, msg: PointMessage, workdir: Path, report: Report) -> PointCheckpoints:
        """Open the attempt's checkpoints and restore the newest that verifies into checkpoint/."""
        settings = Settings.of(msg.evaluation, self.pilot_store)
        self.current = PointCheckpoints(self.store(settings), settings, msg, workdir, report)
        self.current.restore()
        return self.current

    def end(self) -> None:
        self.current = None

    def keep_artifacts(self, msg: PointMessage, workdir: Path) -> None:
        """The attempt's metadata and metrics files (evaluation.files.meta/metrics) into its store."""
        files = msg.evaluation.files
        if files.meta is None and files.metrics is None:
            return
        try:
            store = self.store(Settings.of(msg.evaluation, self.pilot_store))
        except (CheckpointError, ConfigError) as exc:
            log.warning("point %d attempt %d: metadata and metrics not kept: %s", msg.number, msg.attempt, exc)
            return
        artifacts.collect(store, msg, workdir)

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
