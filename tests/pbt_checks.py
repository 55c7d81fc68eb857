"""What a PBT run must show in its bookkeeping, judged from the evaluation's own records
(examples/pbt/train.py reports, every epoch, the step and weights' digest it started from,
the config it runs and the digest of the weights it reached)."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from gridhpo.bookkeeping.repository import Repository
from gridhpo.steering.space import SearchSpace


@dataclass
class Run:
    """One attempt as its evaluation recorded it."""

    member: int
    attempt: int
    end_reason: str | None
    restored_step: int
    restored_digest: int
    config: tuple[float, float]
    reached: dict[int, int] = field(default_factory=dict)  # step -> digest of the weights


def runs(repo: Repository, task_id: int) -> list[Run]:
    number = {p.id: p.number for p in repo.points(task_id)}
    attempts = {a.id: a for a in repo.attempts(task_id=task_id)}
    out: dict[int, Run] = {}
    for m in repo.metrics(task_id):
        v = m.values
        if "restored_digest" not in v:
            continue
        a = attempts[m.attempt_id]
        r = out.setdefault(m.attempt_id, Run(number[m.point_id], a.number, a.end_reason, int(v["restored_step"]),
                                             int(v["restored_digest"]), (v["lr"], v["weight_decay"])))
        r.reached[int(m.step)] = int(v["digest"])
    return sorted(out.values(), key=lambda r: (r.member, r.attempt))


def check_exploits(repo: Repository, task_id: int, required: bool = True) -> list[Any]:
    """Exploits happened (unless not ``required``); each started at its parent's step, from its
    parent's weights, with its new config; the copy was restored (so never pruned before)."""
    segs = repo.lineage(task_id)
    exploits = [s for s in segs if s.parent is not None]
    assert exploits or not required, "no member exploited another"
    done = runs(repo, task_id)
    reached: dict[tuple[int, int], set[int]] = {}
    for r in done:
        for step, digest in r.reached.items():
            reached.setdefault((r.member, step), set()).add(digest)
    for x in exploits:
        assert x.restore is not None and x.restored_at is not None, f"member {x.member} never restored {x.restore}"
        first = [r for r in done if r.member == x.member and r.config == _config(x.config_after)
                 and r.restored_step == x.step]
        assert first, f"member {x.member} never ran segment {x.segment}'s config from step {x.step:g}"
        # the parent's weights at that step, as the parent itself reported them
        assert first[0].restored_digest in reached[(x.parent, int(x.step))], (x, first[0])
    return exploits


def check_own_weights(repo: Repository, task_id: int) -> None:
    """No member runs a config with another member's weights: every attempt started afresh,
    from weights its own member reached, or from its exploit's parent's with that exploit's config."""
    segs = repo.lineage(task_id)
    done = runs(repo, task_id)
    owner: dict[int, set[int]] = {}
    for r in done:
        for digest in r.reached.values():
            owner.setdefault(digest, set()).add(r.member)
    for r in done:
        if r.restored_step == 0:
            continue
        whose = owner.get(r.restored_digest, set())
        if r.member in whose:
            continue
        assert any(s.member == r.member and s.parent in whose and int(s.step) == r.restored_step
                   and _config(s.config_after) == r.config for s in segs), \
            f"member {r.member} attempt {r.attempt} ran {r.config} on weights of member(s) {whose}"


def check_explored_values(repo: Repository, task_id: int, space: SearchSpace) -> None:
    """Perturbed values stay inside their bounds and on their steps."""
    for s in repo.lineage(task_id):
        for name, value in s.config_after.items():
            p = space.by_name[name]
            assert p.contains(value), f"member {s.member} segment {s.segment}: {name}={value} outside {p}"


def check_loss_bounded(repo: Repository, task_id: int, steps_lost: int) -> int:
    """An attempt that follows an interrupted one of its segment resumes at most ``steps_lost``
    steps before where the interrupted one got to. Returns how many resumed so."""
    done = runs(repo, task_id)
    # an attempt that starts an exploit's segment restores the parent's weights, not its own
    copied = {(s.member, int(s.step), _config(s.config_after)) for s in repo.lineage(task_id) if s.parent is not None}
    resumed = 0
    for before, after in itertools.pairwise(done):
        if before.member != after.member or before.end_reason in ("finished", "segment") or not before.reached \
                or (after.member, after.restored_step, after.config) in copied:
            continue
        assert after.restored_step >= max(before.reached) - steps_lost, (before, after)
        resumed += 1
    return resumed


def _config(c: dict[str, Any]) -> tuple[float, float]:
    return (float(c["lr"]), float(c["weight_decay"]))


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
