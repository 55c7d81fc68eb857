"""The population: reports in, decisions out.

Ownership and threading: one ``Population`` per task, owned by the steering's loop (no
locks). Every method is a pure state transition; randomness comes from a generator seeded by
(task seed, member, perturbation point), so replaying the recorded reports gives the same
decisions after a restart.

Asynchronous by design: a member that reaches a perturbation point is judged at once
against the members whose latest reports are fresh (within one perturbation interval of its
step, ahead or behind); nobody waits for a slow, queued or lost member. A lost member keeps
its place and resumes from its own newest checkpoint.
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gridhpo.errors import GridHPOError
from gridhpo.steering.population.config import PBTConfig
from gridhpo.steering.population.explore import explore
from gridhpo.steering.space import SearchSpace


@dataclass
class Member:
    index: int
    config: dict[str, Any]
    step: float = 0.0
    value: float | None = None  # latest value, in the direction minimised
    boundary: float = 0.0  # the last perturbation point this member passed
    checkpoint: tuple[float, str] | None = None  # newest verified checkpoint: (step, store reference)
    segment: int = 0
    done: bool = False


@dataclass(frozen=True)
class Segment:
    """One link of a member's lineage: what it ran from ``step`` on, and where it came from."""

    member: int
    index: int
    step: float
    config_before: Mapping[str, Any]
    config_after: Mapping[str, Any]
    parent: int | None = None  # the member whose weights it copied (None: its own)
    parent_checkpoint: str | None = None


@dataclass(frozen=True)
class Continue:
    """Go on with the same config from the member's own checkpoint."""

    member: int
    step: float


@dataclass(frozen=True)
class Exploit:
    """Start the member's next segment from a copy of ``source``'s checkpoint, with ``config``.

    The config and the checkpoint travel together in one decision (and one message), so a
    config can never run with another member's weights."""

    member: int
    source: int
    checkpoint: str
    step: float  # the source's step at that checkpoint: where the member resumes
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Wait:
    """Not at a perturbation point: nothing to decide."""

    member: int


Decision = Continue | Exploit | Wait


class PopulationError(GridHPOError):
    pass


@dataclass
class Population:
    config: PBTConfig
    space: SearchSpace
    members: dict[int, Member] = field(default_factory=dict)
    lineage: list[Segment] = field(default_factory=list)
    # (member to start, checkpoint reference) not yet restored: the store keeps these
    pending: dict[int, str] = field(default_factory=dict)

    def add(self, index: int, config: Mapping[str, Any]) -> Member:
        if index in self.members:
            raise PopulationError(f"member {index} is already in the population")
        if len(self.members) >= self.config.population:
            raise PopulationError(f"the population is full ({self.config.population} members)")
        m = Member(index, dict(config))
        self.members[index] = m
        self.lineage.append(Segment(index, 0, 0.0, dict(config), dict(config)))
        return m

    def checkpoint(self, index: int, step: float, reference: str) -> None:
        """A verified checkpoint of ``index`` at ``step`` is in the store."""
        m = self._member(index)
        if m.checkpoint is None or step >= m.checkpoint[0]:
            m.checkpoint = (step, reference)

    def restored(self, index: int, reference: str) -> None:
        """``index`` restored ``reference``: it need not be kept for it any longer."""
        if self.pending.get(index) == reference:
            del self.pending[index]

    def pinned(self) -> set[str]:
        """Checkpoints some member is still to start from: never pruned."""
        return set(self.pending.values())

    def finish(self, index: int) -> None:
        self._member(index).done = True

    def report(self, index: int, step: float, value: float) -> Decision:
        m = self._member(index)
        if not math.isfinite(value) or step < m.step:
            return Wait(index)  # a late or replayed report changes nothing
        m.step, m.value = step, value
        if m.done or step < m.boundary + self.config.perturbation_interval:
            return Wait(index)
        m.boundary = step
        return self._perturb(m)

    def _perturb(self, m: Member) -> Decision:
        peers = self._fresh(m)
        # as Ray Tune's PBT: the quantile rounded up, never more than half, so that two fresh
        # members suffice and a lost one never makes the others wait
        k = min(math.ceil(len(peers) * self.config.quantile_fraction), len(peers) // 2)
        if k < 1:
            return Continue(m.index, m.step)
        ranked = sorted(peers, key=lambda p: (p.value if p.value is not None else math.inf, p.index))
        top, bottom = ranked[:k], ranked[-k:]
        # a member that is done still ranks, but is never copied: its final weights would leave
        # the copier an empty segment at the end of the budget
        sources = [p for p in top if p.checkpoint is not None and p.index != m.index and not p.done]
        if m not in bottom or not sources:
            return Continue(m.index, m.step)
        rng = random.Random(f"{self.config.seed}:{m.index}:{m.boundary!r}")
        source = rng.choice(sources)
        assert source.checkpoint is not None
        step, reference = source.checkpoint
        before = m.config
        m.config = explore(source.config, self.space, self.config.mutable, self.config.factors,
                           self.config.resample_probability, rng)
        m.segment += 1
        m.step = m.boundary = step
        self.pending[m.index] = reference
        self.lineage.append(Segment(m.index, m.segment, step, before, dict(m.config), source.index, reference))
        return Exploit(m.index, source.index, reference, step, dict(m.config))

    def _fresh(self, m: Member) -> list[Member]:
        window = self.config.perturbation_interval
        return [p for p in self.members.values()
                if p.value is not None and abs(p.step - m.step) <= window]

    def schedule(self, index: int) -> list[Segment]:
        """The segments that made ``index``'s final state: its own and, through each exploit,
        its parents' before the copy, oldest first."""
        out: list[Segment] = []
        until = math.inf
        current: int | None = index
        while current is not None:
            own = [s for s in self.lineage if s.member == current and s.step <= until]
            if not own:
                break
            chain = sorted(own, key=lambda s: s.index)
            # the newest exploit into `current` before `until`: everything earlier came from its parent
            cut = next((s for s in reversed(chain) if s.parent is not None), None)
            keep = [s for s in chain if cut is None or s.index >= cut.index]
            out = keep + out
            current, until = (cut.parent, cut.step) if cut is not None else (None, until)
        return out

    def _member(self, index: int) -> Member:
        try:
            return self.members[index]
        except KeyError:
            raise PopulationError(f"member {index} is not in the population "
                                  f"(members: 0 to {self.config.population - 1})") from None
