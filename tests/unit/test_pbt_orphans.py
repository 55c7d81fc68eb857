"""A steering that dies between making an exploit's copy in the store and committing the
decision leaves the copy orphaned (issue 17): the seam between the lifecycle core, which
decides and rebuilds from the lineage rows, and steering/exploits.py, which makes and discards
copies in a real folder store. A restarted steering deletes the orphan before it serves the
task, so the member's newest entry is its own again, and the redelivered segment end makes
exactly one copy."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gridhpo.bookkeeping.records import SegmentRecord
from gridhpo.checkpoints import open_store
from gridhpo.checkpoints.entry import Entry
from gridhpo.checkpoints.manifest import Manifest, point_prefix
from gridhpo.protocol import Event
from gridhpo.protocol.events import CheckpointData, FinishedData, MetricData
from gridhpo.steering import schedulers
from gridhpo.steering.exploits import Exploits
from gridhpo.steering.lifecycle import TaskLifecycle
from gridhpo.steering.lifecycle.effects import Adopt, Effect
from gridhpo.steering.lifecycle.events import PointsCreated, Received, Suggested
from gridhpo.steering.lifecycle.states import OpenPoint, PointState
from gridhpo.steering.optimisers import Suggestion
from gridhpo.steering.taskfile import TaskSpec, parse_task

TASK = 7


def _spec(store: Path) -> TaskSpec:
    return parse_task({
        "name": "core", "search_space": {"lr": {"type": "float", "low": 0.001, "high": 1, "log": True}},
        "optimiser": {"backend": "random", "seed": 1},
        "budget": {"max_points": 2, "parallel": 2, "max_attempts": 2},
        "evaluation": {"command": "true", "checkpoint": {"store": f"file://{store}", "keep": 3}},
        "early_stopping": {"scheduler": "pbt", "resource": "epoch", "max_resource": 4,
                           "options": {"population": 2, "perturbation_interval": 2, "quantile_fraction": 0.5,
                                       "resample_probability": 0.0}},
    })


class Run:
    """A core, the store its members save to, and the lineage rows committed so far."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.spec = _spec(tmp / "store")
        self.store = open_store(f"file://{tmp / 'store'}")
        self.core = TaskLifecycle(TASK, "core", self.spec, "q", schedulers.create(self.spec))
        self.committed: dict[tuple[int, int], SegmentRecord] = {}
        self.saved: dict[int, Entry] = {}
        self.core.apply(Suggested((Suggestion(0, {"lr": 0.1}), Suggestion(1, {"lr": 0.002})), 2))
        self.commit(self.core.apply(PointsCreated((11, 12), 999.0)))

    def manifest(self, member: int) -> Manifest:
        return Manifest(self.store, point_prefix(TASK, "core", member), keep=3)

    def segment_end(self, point: int, member: int, value: float) -> list[Effect]:
        """The member's evaluation saves its weights at step 2 and finishes its segment."""
        entry = self.saved.get(member)
        if entry is None:  # a segment end delivered again names the checkpoint saved the first time
            folder = self.tmp / f"work-{member}" / "checkpoint"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "state.txt").write_text(f"member {member}'s weights")
            entry = self.manifest(member).save(folder, folder.parent, task=TASK, point=member, attempt=1,
                                               max_size=1 << 20)
            assert entry is not None
            self.saved[member] = entry
        ev = [Event.of(p, task_id=TASK, point_id=point, attempt=1, pilot_id="p") for p in (
            MetricData(seq=0, values={"loss": value}, step=2.0),
            CheckpointData(key=entry.key, size=entry.size, sha256=entry.sha256, sequence=entry.sequence, final=True),
            FinishedData(value=value))]
        return self.core.apply(Received(tuple(ev), 1000.0))

    def commit(self, out: list[Effect]) -> None:
        self.committed.update({(e.point_id, e.segment): e for e in out if isinstance(e, SegmentRecord)})

    def restarted(self) -> TaskLifecycle:
        """A new core from the committed rows: member 0 queued for its next segment, member 1's
        first segment still running (its end was never committed)."""
        rows = [SimpleNamespace(**{k: getattr(r, k) for k in SegmentRecord.__dataclass_fields__})
                for r in self.committed.values()]
        again = TaskLifecycle(TASK, "core", self.spec, "q", schedulers.create(self.spec), open_points={
            11: OpenPoint(11, 0, {"lr": 0.1}, PointState.QUEUED, 2, 1000.0),
            12: OpenPoint(12, 1, {"lr": 0.002}, PointState.RUNNING, 1, 1000.0)})
        assert again.pbt is not None
        again.pbt.rebuild(TASK, rows, again.open)
        self.core = again
        return again

    def copies(self, member: int) -> list[str]:
        """The member's entries that are copies of another member's checkpoint."""
        m = self.manifest(member)
        return [k for k in m.entry_keys() if self._restored(m, k) != f"member {member}'s weights"]

    def newest(self, member: int) -> str:
        work = self.tmp / "restore"
        work.mkdir(exist_ok=True)
        assert self.manifest(member).restore(work / "checkpoint", work) is not None
        return (work / "checkpoint" / "state.txt").read_text()

    def _restored(self, m: Manifest, key: str) -> str:
        work = self.tmp / "peek"
        work.mkdir(exist_ok=True)
        assert m.restore(work / "checkpoint", work, exact=key) is not None
        return (work / "checkpoint" / "state.txt").read_text()


def _adopt(run: Run, out: list[Effect]) -> Any:
    (adopt,) = [e for e in out if isinstance(e, Adopt)]
    answer = Exploits().adopt(run.spec, adopt)
    assert answer.key is not None, answer.reason
    return answer


def test_a_copy_never_committed_is_deleted_by_the_restarted_steering_and_made_once_again(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.commit(run.segment_end(11, 0, 0.1))
    orphan = _adopt(run, run.segment_end(12, 1, 0.9)).key  # member 1 exploits member 0 ...
    assert run.newest(1) == "member 0's weights"
    # ... and the steering dies before committing: the rows know nothing of the copy
    again = run.restarted()
    assert again.pbt is not None
    gone = Exploits().discard_orphans(run.spec, TASK, "core", again.pbt.copies)
    assert gone == [orphan]
    # the copy, its archive and its pin are gone: the member's newest entry is its own again,
    # so a segment that does not exploit, or a retry, never runs on member 0's weights
    assert run.copies(1) == [] and run.newest(1) == "member 1's weights"
    assert not [k for k in run.store.list(point_prefix(TASK, "core", 1)) if "pinned-" in k
                and not run.store.get_bytes(k).decode().startswith(point_prefix(TASK, "core", 1))]
    # the segment end is delivered again: the same decision, one copy in the store
    again_copy = _adopt(run, run.segment_end(12, 1, 0.9)).key
    assert run.copies(1) == [again_copy] and run.newest(1) == "member 0's weights"


def test_a_committed_copy_not_yet_restored_is_kept(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.commit(run.segment_end(11, 0, 0.1))
    answer = _adopt(run, run.segment_end(12, 1, 0.9))
    run.commit(run.core.apply(answer))  # the decision is committed: the rows name the copy
    rows = list(run.committed.values())
    again = TaskLifecycle(TASK, "core", run.spec, "q", schedulers.create(run.spec), open_points={
        11: OpenPoint(11, 0, {"lr": 0.1}, PointState.QUEUED, 2, 1000.0),
        12: OpenPoint(12, 1, {"lr": 0.002}, PointState.QUEUED, 2, 1000.0)})
    assert again.pbt is not None
    again.pbt.rebuild(TASK, [SimpleNamespace(**{k: getattr(r, k) for k in SegmentRecord.__dataclass_fields__})
                             for r in rows], again.open)
    assert Exploits().discard_orphans(run.spec, TASK, "core", again.pbt.copies) == []
    assert run.copies(1) == [answer.key]
    assert again.point_message(again.open[12]).restore == answer.key
