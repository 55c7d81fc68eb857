"""Population-based training in the pure lifecycle core (steering/lifecycle/pbt.py): a member's
segment ends at its perturbation point; an exploit waits for its copy and then goes out as ONE
point message carrying the explored config and the checkpoint to restore; the restore unpins
it; a restarted core rebuilds the population and the pending exploit from the lineage rows."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gridhpo.bookkeeping.records import SegmentRecord
from gridhpo.protocol import Event
from gridhpo.protocol.events import CheckpointData, FinishedData, MetricData
from gridhpo.steering import schedulers
from gridhpo.steering.lifecycle import TaskLifecycle
from gridhpo.steering.lifecycle.effects import Adopt, Effect, Pin, SendPoint, Unpin
from gridhpo.steering.lifecycle.events import Adopted, PointsCreated, Received, Suggested
from gridhpo.steering.lifecycle.states import OpenPoint, PointState
from gridhpo.steering.optimisers import Suggestion
from gridhpo.steering.taskfile import TaskSpec, parse_task

TASK = 7


def spec() -> TaskSpec:
    return parse_task({
        "name": "core", "search_space": {"lr": {"type": "float", "low": 0.001, "high": 1, "log": True}},
        "optimiser": {"backend": "random", "seed": 1},
        "budget": {"max_points": 2, "parallel": 2, "max_attempts": 2},
        "evaluation": {"command": "true"},
        "early_stopping": {"scheduler": "pbt", "resource": "epoch", "max_resource": 4,
                           "options": {"population": 2, "perturbation_interval": 2, "quantile_fraction": 0.5,
                                       "resample_probability": 0.0}},
    })


def _ev(payload: Any, point: int, attempt: int) -> Event:
    return Event.of(payload, task_id=TASK, point_id=point, attempt=attempt, pilot_id="p")


def _segment_end(core: TaskLifecycle, point: int, attempt: int, key: str, value: float) -> list[Effect]:
    return core.apply(Received((
        _ev(MetricData(seq=0, values={"loss": value}, step=2.0), point, attempt),
        _ev(CheckpointData(key=key, size=1, sha256="0" * 64, sequence=1, final=True), point, attempt),
        _ev(FinishedData(value=value), point, attempt)), 1000.0))


def _started() -> tuple[TaskLifecycle, list[Effect]]:
    s = spec()
    core = TaskLifecycle(TASK, "core", s, "q", schedulers.create(s))
    core.apply(Suggested((Suggestion(0, {"lr": 0.1}), Suggestion(1, {"lr": 0.002})), 2))
    return core, core.apply(PointsCreated((11, 12), 999.0))


def test_a_segment_ends_at_its_perturbation_point_and_the_next_one_is_queued() -> None:
    core, out = _started()
    sent = [e.message for e in out if isinstance(e, SendPoint)]
    assert [m.budget.max_resource for m in sent if m.budget] == [2, 2]  # each told to stop at step 2
    out = _segment_end(core, 11, 1, "7-core/point-0/00000001-a1.tar", 0.1)
    (msg,) = [e.message for e in out if isinstance(e, SendPoint)]
    # alone with a value, member 0 goes on: its own checkpoint, its own config, to step 4
    assert (msg.attempt, msg.params, msg.restore) == (2, {"lr": 0.1}, None)
    assert msg.budget is not None and msg.budget.max_resource == 4
    assert core.open[11].state == PointState.QUEUED
    # its segment end is what others may copy: pinned past retention, until a newer one replaces it
    assert [(p.member, p.key) for p in out if isinstance(p, Pin)] == [(0, "7-core/point-0/00000001-a1.json")]
    out = core.apply(Received((
        _ev(CheckpointData(key="7-core/point-0/00000003-a2.tar", size=1, sha256="0" * 64, sequence=3), 11, 2),
        _ev(FinishedData(value=0.05), 11, 2)), 1001.0))
    assert [(type(e).__name__, e.key) for e in out if isinstance(e, Pin | Unpin)] == [
        ("Pin", "7-core/point-0/00000003-a2.json"), ("Unpin", "7-core/point-0/00000001-a1.json")]


def test_an_exploit_sends_the_new_config_and_the_copy_in_one_message_only_once_copied() -> None:
    core, _ = _started()
    _segment_end(core, 11, 1, "7-core/point-0/00000001-a1.tar", 0.1)
    out = _segment_end(core, 12, 1, "7-core/point-1/00000001-a1.tar", 0.9)
    (adopt,) = [e for e in out if isinstance(e, Adopt)]
    assert (adopt.member, adopt.source_member, adopt.key) == (1, 0, "7-core/point-0/00000001-a1.json")
    assert not [e for e in out if isinstance(e, SendPoint)]  # no message before the copy exists
    out = core.apply(Adopted(12, "7-core/point-1/00000002-a2.json", "", 1001.0))
    (msg,) = [e.message for e in out if isinstance(e, SendPoint)]
    assert msg.restore == "7-core/point-1/00000002-a2.json"
    assert msg.params != {"lr": 0.002} and 0.001 <= msg.params["lr"] <= 1  # explored from member 0's 0.1
    assert msg.params["lr"] in (0.1 * 0.8, 0.1 * 1.2)
    (seg,) = [e for e in out if isinstance(e, SegmentRecord)]
    assert (seg.parent, seg.parent_checkpoint, seg.step, seg.config_after) == (
        0, "7-core/point-0/00000001-a1.json", 2.0, msg.params)
    # its restore is reported: the pin may go, and a retry would start from the member's newest
    out = core.apply(Received((_ev(CheckpointData(key="7-core/point-1/00000002-a2.tar", size=1, sha256="0" * 64,
                                                  sequence=2, restored=True), 12, 2),), 1002.0))
    assert [(u.member, u.key) for u in out if isinstance(u, Unpin)] == [(1, "7-core/point-1/00000002-a2.json")]
    assert core.open[12].restore is None and core.pbt is not None and not core.pbt.population.pinned()


def test_an_abandoned_copy_leaves_the_member_as_it_was() -> None:
    core, _ = _started()
    _segment_end(core, 11, 1, "7-core/point-0/00000001-a1.tar", 0.1)
    _segment_end(core, 12, 1, "7-core/point-1/00000001-a1.tar", 0.9)
    out = core.apply(Adopted(12, None, "pruned meanwhile", 1001.0))
    (msg,) = [e.message for e in out if isinstance(e, SendPoint)]
    assert (msg.params, msg.restore) == ({"lr": 0.002}, None)


def test_a_restarted_core_rebuilds_the_population_and_its_pending_exploit() -> None:
    core, _ = _started()
    written: dict[tuple[int, int], SegmentRecord] = {}
    for out in (_segment_end(core, 11, 1, "7-core/point-0/00000001-a1.tar", 0.1),
                _segment_end(core, 12, 1, "7-core/point-1/00000001-a1.tar", 0.9),
                core.apply(Adopted(12, "7-core/point-1/00000002-a2.json", "", 1001.0))):
        written.update({(e.point_id, e.segment): e for e in out if isinstance(e, SegmentRecord)})
    rows = [SimpleNamespace(**{k: getattr(r, k) for k in SegmentRecord.__dataclass_fields__}) for r in written.values()]
    s = spec()
    again = TaskLifecycle(TASK, "core", s, "q", schedulers.create(s), open_points={
        11: OpenPoint(11, 0, {"lr": 0.1}, PointState.QUEUED, 2, 1000.0),
        12: OpenPoint(12, 1, {"lr": 0.002}, PointState.QUEUED, 2, 1000.0)})
    assert again.pbt is not None
    again.pbt.rebuild(TASK, rows, again.open)
    assert again.pbt.population.pinned() == {"7-core/point-1/00000002-a2.json"}
    msg = again.point_message(again.open[12])
    assert (msg.restore, msg.params) == ("7-core/point-1/00000002-a2.json", core.open[12].params)
    assert msg.budget is not None and msg.budget.max_resource == 4
    m0 = again.pbt.population.members[0]
    assert (m0.step, m0.value, m0.checkpoint) == (2.0, 0.1, (2.0, "7-core/point-0/00000001-a1.json"))
