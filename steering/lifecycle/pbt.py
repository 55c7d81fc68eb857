"""Population-based training in the lifecycle core: members as chains of segments.

A member is a point; it runs as a chain of attempts, each told (its point message's
``budget.max_resource``) to stop at the next perturbation point. An attempt that ends there
(``finished`` before the task's ``max_resource``) ends a segment, not the point: the member's
value at that step goes to the population (steering/population), whose decision is carried
out here. ``Continue``: the next segment is queued at once, restoring the member's own newest
checkpoint. ``Exploit``: an ``Adopt`` effect asks the service to copy the parent's checkpoint
into the member's manifest; the ``Adopted`` answer queues the next segment with the explored
config AND that copy as the one checkpoint to restore, in one message. The copy stays pinned
until the member reports having restored it (then an ``Unpin`` effect).

Every change is written as a ``SegmentRecord`` (the lineage table), from which a restarted
steering rebuilds the population and its pending exploits (``PopulationRun.rebuild``).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gridhpo.bookkeeping.records import SegmentRecord
from gridhpo.protocol.events import CheckpointData
from gridhpo.steering.lifecycle.effects import Adopt, Effect, Pin, Unpin
from gridhpo.steering.lifecycle.events import Adopted
from gridhpo.steering.lifecycle.states import AttemptState, OpenPoint, PointState
from gridhpo.steering.population import Exploit, Population, Segment
from gridhpo.steering.schedulers.pbt import PBT
from gridhpo.steering.taskfile import TaskSpec

if TYPE_CHECKING:
    from gridhpo.steering.lifecycle.core import TaskLifecycle

log = logging.getLogger(__name__)


def entry_key(key: str) -> str:
    """The manifest entry of a checkpoint archive (events name the archive, restores the entry)."""
    return key[: -len(".tar")] + ".json" if key.endswith(".tar") else key


@dataclass
class PopulationRun:
    """The core's side of a PBT task: the population, each member's current segment, the
    newest checkpoint its current attempt saved, and the exploits waiting for their copy."""

    spec: TaskSpec
    population: Population
    segments: dict[int, SegmentRecord] = field(default_factory=dict)  # by point id
    saved: dict[int, str] = field(default_factory=dict)  # by point id: newest entry key of the attempt
    awaiting: dict[int, tuple[Exploit, dict[str, Any]]] = field(default_factory=dict)  # by point id
    # after a restart, by open member: the copies of exploits its lineage rows name; any other
    # copy in its manifest is an orphan of a steering that died before committing (steering/exploits.py)
    copies: dict[int, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: TaskSpec, scheduler: PBT) -> PopulationRun:
        return cls(spec, Population(scheduler.pbt, spec.search_space))

    @property
    def max_resource(self) -> int:
        return self.spec.early_stopping.max_resource

    def until(self, step: float) -> int:
        """Where a segment starting at ``step`` ends: the next perturbation point, or the end."""
        return min(self.max_resource, math.ceil(step + self.population.config.perturbation_interval - 1e-9))

    def signed(self, value: float) -> float:
        return value if self.spec.objective.mode == "min" else -value

    # ------------------------------------------------------------------ transitions

    def joined(self, life: TaskLifecycle, op: OpenPoint, now: float, out: list[Effect]) -> None:
        """A new point is a new member; its first segment starts afresh."""
        self.population.add(op.number, op.params)
        op.until = self.until(0.0)
        self._start(life, op, SegmentRecord(life.task_id, op.id, op.number, 0, 0.0, float(op.until),
                                            dict(op.params), dict(op.params), now), out)

    def checkpoint(self, life: TaskLifecycle, op: OpenPoint, data: CheckpointData, now: float,
                   out: list[Effect]) -> None:
        key = entry_key(data.key)
        if not data.restored:
            self.saved[op.id] = key
            return
        seg = self.segments.get(op.id)
        if op.restore is None or key != op.restore or seg is None:
            return
        # restored exactly the copy it was told to: the pin has done its work
        self.population.restored(op.number, key)
        op.restore = None
        seg.restored_at = now
        out.append(replace(seg))
        out.append(Unpin(life.task_id, life.name, op.number, key))

    def finished(self, life: TaskLifecycle, op: OpenPoint, value: float, at: float, out: list[Effect]) -> bool:
        """A member's attempt finished at its segment's end. True: the segment ended and the
        member goes on (the caller must not end the point); False: the member is done."""
        seg = self.segments.get(op.id)
        step = float(op.until if op.until is not None else self.max_resource)
        member = self.population.members.get(op.number)
        if seg is None or member is None:
            return False
        seg.end_value, seg.ended_at = value, at
        seg.end_checkpoint = self.saved.pop(op.id, None)
        out.append(replace(seg))
        if seg.end_checkpoint is not None:
            # the member's newest segment end is what others copy: kept past retention while it
            # is (the member's next segment saves more, and would prune it before a slower
            # member reaches this step and copies it)
            old = member.checkpoint
            self.population.checkpoint(op.number, step, seg.end_checkpoint)
            if member.checkpoint is not None and member.checkpoint[1] == seg.end_checkpoint:
                out.append(Pin(life.task_id, life.name, op.number, seg.end_checkpoint))
                if old is not None and old[1] != seg.end_checkpoint:
                    out.append(Unpin(life.task_id, life.name, op.number, old[1]))
        if step >= self.max_resource:
            self.population.finish(op.number)
            self.population.report(op.number, step, self.signed(value))
            return False
        member.segment = seg.segment
        decision = self.population.report(op.number, step, self.signed(value))
        life.write_attempt(op, AttemptState.FINISHED, out, "segment", at, value, f"segment {seg.segment} ended")
        op.next_attempt(at)  # not yet sent: an exploit waits for its copy
        if isinstance(decision, Exploit):
            log.info("task %s member %d exploits member %d at step %g", life.name, op.number, decision.source,
                     decision.step)
            self.awaiting[op.id] = (decision, dict(seg.config_after))
            out.append(Adopt(life.task_id, life.name, op.id, op.number, decision.source, decision.checkpoint,
                             op.attempt))
            return True
        self._next(life, op, seg, step, dict(seg.config_after), None, None, at, out)
        return True

    def adopted(self, life: TaskLifecycle, ev: Adopted, out: list[Effect]) -> None:
        """The copy of an exploit's checkpoint is in the member's manifest (or could not be made)."""
        waiting = self.awaiting.pop(ev.point_id, None)
        op = life.open.get(ev.point_id)
        seg = self.segments.get(ev.point_id)
        if waiting is None or op is None or seg is None:
            return
        decision, before = waiting
        if ev.key is None:
            # the parent's checkpoint is gone or does not verify: the member goes on as itself
            log.warning("task %s member %d: exploit of member %d abandoned: %s", life.name, op.number,
                        decision.source, ev.reason)
            self.population.pending.pop(op.number, None)
            m = self.population.members[op.number]
            m.config, m.step, m.boundary = before, seg.until, seg.until
            self._next(life, op, seg, seg.until, before, None, None, ev.now, out)
            return
        self.population.pending[op.number] = ev.key
        op.params = dict(decision.config)
        self._next(life, op, seg, decision.step, dict(decision.config), decision.source, decision.checkpoint,
                   ev.now, out, restore=ev.key)

    # ------------------------------------------------------------------ steps

    def _next(self, life: TaskLifecycle, op: OpenPoint, seg: SegmentRecord, step: float, config: dict[str, Any],
              parent: int | None, parent_checkpoint: str | None, now: float, out: list[Effect],
              restore: str | None = None) -> None:
        """Queue the member's next segment: from ``step``, with ``config`` and (after an
        exploit) the one checkpoint it must restore, all in the one point message."""
        op.params = config
        op.restore = restore
        op.until = self.until(step)
        op.segment_attempt = op.attempt
        nxt = SegmentRecord(life.task_id, op.id, op.number, seg.segment + 1, step, float(op.until),
                            dict(seg.config_after), config, now, parent, parent_checkpoint, restore)
        self._start(life, op, nxt, out)
        op.dispatched_at = now
        life.write_point(op, PointState.QUEUED, out, message=f"segment {nxt.segment} from step {step:g}")
        out.append(life.send(op))

    def _start(self, life: TaskLifecycle, op: OpenPoint, seg: SegmentRecord, out: list[Effect]) -> None:
        self.segments[op.id] = seg
        out.append(replace(seg))

    # ------------------------------------------------------------------ restart

    def rebuild(self, task_id: int, rows: Sequence[Any], open_points: dict[int, OpenPoint]) -> None:
        """The population and its pending exploits as the bookkeeping has them (a restart)."""
        by_member: dict[int, list[Any]] = {}
        for r in rows:
            by_member.setdefault(int(r.member), []).append(r)
        by_point = {op.id: op for op in open_points.values()}
        self.copies = {op.number: {str(r.restore) for r in by_member.get(op.number, []) if r.restore is not None}
                       for op in open_points.values()}
        for fresh in open_points.values():
            if fresh.number not in by_member:
                # a member whose first segment's row was not written yet (a crash between the
                # two transactions of a round): its first segment again; its row is written
                # with the segment's end
                self.population.add(fresh.number, fresh.params)
                fresh.until = self.until(0.0)
                self.segments[fresh.id] = SegmentRecord(task_id, fresh.id, fresh.number, 0, 0.0,
                                                        float(fresh.until), dict(fresh.params), dict(fresh.params),
                                                        fresh.dispatched_at)
        for number, segs in sorted(by_member.items()):
            segs.sort(key=lambda r: r.segment)
            m = self.population.add(number, dict(segs[0].config_before))
            self.population.lineage.extend(
                Segment(number, r.segment, r.step, dict(r.config_before), dict(r.config_after), r.parent,
                        r.parent_checkpoint) for r in segs if r.parent is not None)
            last = segs[-1]
            m.config, m.segment, m.boundary = dict(last.config_after), int(last.segment), float(last.step)
            ended = [r for r in segs if r.ended_at is not None and r.end_value is not None]
            if ended:
                m.value = self.signed(float(ended[-1].end_value))
            with_ckpt = [r for r in segs if r.end_checkpoint is not None]
            if with_ckpt:
                m.checkpoint = (float(with_ckpt[-1].until), str(with_ckpt[-1].end_checkpoint))
            m.step = float(last.until) if last.ended_at is not None else float(last.step)
            op = by_point.get(int(last.point_id))
            if op is None:
                m.done = True
                continue
            if last.restore is not None and last.restored_at is None:
                self.population.pending[number] = str(last.restore)
                op.restore = str(last.restore)
            op.params, op.until, op.segment_attempt = dict(last.config_after), int(last.until), op.attempt
            self.segments[op.id] = _record(last)


def _record(r: Any) -> SegmentRecord:
    return SegmentRecord(int(r.task_id), int(r.point_id), int(r.member), int(r.segment), float(r.step),
                         float(r.until), dict(r.config_before), dict(r.config_after), float(r.started_at),
                         r.parent, r.parent_checkpoint, r.restore, r.restored_at, r.end_value, r.end_checkpoint,
                         r.ended_at)
