"""Work directories: one per attempt, holding what the evaluation reads and writes."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from gridhpo.evaluation.runtimes import Job
from gridhpo.protocol import PointMessage

log = logging.getLogger(__name__)


class Workdirs:
    """The work directories of one pilot, under ``root``."""

    def __init__(self, root: Path, pilot_id: str, site: str) -> None:
        self.root = root
        self.pilot_id = pilot_id
        self.site = site

    def prepare(self, msg: PointMessage) -> Job:
        """A fresh work directory with input.json and gridhpo.json, and the Job to run there."""
        workdir = self.root / f"task-{msg.task_id}" / f"point-{msg.number}-attempt-{msg.attempt}"
        if workdir.exists():
            shutil.rmtree(workdir)
        (workdir / "checkpoint").mkdir(parents=True)
        ev = msg.evaluation
        context = {
            "task_id": msg.task_id, "task_name": msg.task_name, "point_id": msg.point_id, "number": msg.number,
            "attempt": msg.attempt, "pilot_id": self.pilot_id, "site": self.site,
            "objective": msg.objective, "budget": msg.budget, "workdir": str(workdir),
            "paths": {"input": "input.json", "output": "output.json", "metrics": "metrics.jsonl",
                      "checkpoint": "checkpoint"},
        }
        (workdir / "input.json").write_text(json.dumps(msg.params, indent=1))
        (workdir / "gridhpo.json").write_text(json.dumps(context, indent=1))
        env = {str(k): str(v) for k, v in (ev.get("env") or {}).items()}
        env.update({
            "GRIDHPO_WORKDIR": str(workdir), "GRIDHPO_TASK_ID": str(msg.task_id),
            "GRIDHPO_POINT": str(msg.number), "GRIDHPO_ATTEMPT": str(msg.attempt),
            "GRIDHPO_PILOT_ID": self.pilot_id, "GRIDHPO_SITE": self.site,
        })
        if ev.get("source_dir"):
            env["GRIDHPO_TASK_DIR"] = str(ev["source_dir"])
        return Job(workdir=workdir, command=ev.get("command"), image=ev.get("image"), python=ev.get("python"),
                   source_dir=ev.get("source_dir"), env=env, resources=dict(ev.get("resources") or {}),
                   params=msg.params, name=f"gridhpo-{msg.task_id}-{msg.number}-{msg.attempt}-{self.pilot_id}")

    def finished(self, job: Job, keep: bool) -> None:
        if not keep:
            shutil.rmtree(job.workdir, ignore_errors=True)
