"""Asynchronous successive halving (Li et al., 2020), and Hyperband's brackets of it.

Rungs sit at ``min_resource * reduction_factor**k`` up to ``max_resource``. When a point
first reaches a rung, it goes on only if its value is in the best ``1/reduction_factor`` of
the values recorded at that rung so far (its own included); otherwise it is stopped (or
paused, with ``revive``). Decisions are taken as results arrive, never waiting for a rung
to fill, so no pilot idles. A paused point is worth reviving once it ranks in the best
``revive_fraction`` (default ``1/reduction_factor``) at its rung: later points did worse.
"""
from __future__ import annotations

import math

from gridhpo.steering.schedulers._base import History, Scheduler
from gridhpo.steering.taskfile import EarlyStopping


def rungs(min_resource: float, max_resource: float, eta: int) -> list[float]:
    out = []
    r = float(min_resource)
    while r < max_resource:
        out.append(r)
        r *= eta
    return out


class ASHA(Scheduler):
    name = "asha"

    def __init__(self, config: EarlyStopping, min_resource: float | None = None) -> None:
        super().__init__(config)
        self.eta = config.reduction_factor
        self.rungs = rungs(min_resource or config.min_resource, config.max_resource, self.eta)
        self.recorded: dict[float, dict[int, float]] = {r: {} for r in self.rungs}
        self.revive_fraction = float(config.options.get("revive_fraction", 1.0 / self.eta))

    def _reached(self, h: History, step: float) -> list[float]:
        """Rungs reached at ``step`` and not recorded yet for this point."""
        return [r for r in self.rungs if r <= step and h.number not in self.recorded[r]]

    def _observe(self, h: History, step: float) -> None:
        for r in self._reached(h, step):
            value = h.value_at(r)
            if value is not None:
                self.recorded[r][h.number] = value

    def _judge(self, h: History, step: float) -> bool:
        ok = True
        for r in self._reached(h, step):
            value = h.value_at(r)
            if value is None:
                continue
            self.recorded[r][h.number] = value
            ok = ok and self._in_top(r, value, 1.0 / self.eta)
        return ok

    def _in_top(self, rung: float, value: float, fraction: float) -> bool:
        values = sorted(self.recorded[rung].values())
        k = max(1, math.floor(len(values) * fraction))
        return value <= values[k - 1]

    def revive(self, paused: list[int]) -> list[int]:
        ranked: list[tuple[float, int]] = []
        for number in paused:
            h = self.points.get(number)
            if h is None:
                continue
            top = [r for r in self.rungs if number in self.recorded[r]]
            if not top:
                continue
            rung = max(top)
            value = self.recorded[rung][number]
            if self._in_top(rung, value, self.revive_fraction):
                ranked.append((value, number))
        return [n for _, n in sorted(ranked)]


class Hyperband(Scheduler):
    """Hyperband as brackets of ASHA (asynchronous Hyperband, as in Li et al.): bracket ``s``
    starts judging at ``min_resource * eta**s``; point ``k`` goes to bracket ``k mod s_max+1``,
    so aggressive and conservative brackets share the task."""

    name = "hyperband"

    def __init__(self, config: EarlyStopping) -> None:
        super().__init__(config)
        n = max(1, len(rungs(config.min_resource, config.max_resource, config.reduction_factor)))
        self.brackets = [ASHA(config, config.min_resource * config.reduction_factor**s) for s in range(n)]

    def bracket(self, number: int) -> ASHA:
        return self.brackets[number % len(self.brackets)]

    def _observe(self, h: History, step: float) -> None:
        b = self.bracket(h.number)
        b.points[h.number] = h
        b._observe(h, step)

    def _judge(self, h: History, step: float) -> bool:
        b = self.bracket(h.number)
        b.points[h.number] = h
        return b._judge(h, step)

    def revive(self, paused: list[int]) -> list[int]:
        ranked: list[int] = []
        for b in self.brackets:
            ranked += b.revive([n for n in paused if self.bracket(n) is b])
        return ranked
