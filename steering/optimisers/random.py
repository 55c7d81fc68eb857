"""Random search: every point drawn independently from the space's own distributions.

Point ``k`` is drawn from a generator seeded by ``(seed, k)``, so a restarted steering
continues with exactly the points it would have asked, with no history to replay. On a
discrete space no point is proposed twice (pending ones included) until it is exhausted.
"""
from __future__ import annotations

import random

from gridhpo.steering.optimisers._base import Optimiser, Trial
from gridhpo.steering.space import Point

_TRIES = 64


class RandomSearch(Optimiser):
    name = "random"
    algorithms = ("random",)
    cheap = True

    _seen: set[str] | None = None

    def _restore(self) -> None:
        self._seen = {self.space.key(t.params) for t in self.trials.values()}

    def _ask(self, n: int) -> list[Point]:
        if self._seen is None:
            self._restore()
        assert self._seen is not None
        out: list[Point] = []
        number = self.next_number
        for _ in range(n):
            point = self._draw(number)
            if point is None:
                break
            out.append(point)
            number += 1
        return out

    def _draw(self, number: int) -> Point | None:
        assert self._seen is not None
        for retry in range(_TRIES):
            rng = random.Random(f"{self.seed}:{number}:{retry}")
            point = self.space.sample(rng)
            key = self.space.key(point)
            if key not in self._seen:
                self._seen.add(key)
                return point
        # a continuous space almost never repeats; a discrete one this crowded is nearly
        # exhausted, so finish it by enumeration rather than by luck
        if self._is_discrete():
            for point in self.space.iter_grid(resolution=1 << 62):
                key = self.space.key(point)
                if key not in self._seen:
                    self._seen.add(key)
                    return point
        return None

    def _is_discrete(self) -> bool:
        from gridhpo.steering.space import Categorical, Fixed, Numeric

        return all(isinstance(p, (Categorical, Fixed)) or (isinstance(p, Numeric) and p.n_steps() is not None)
                   for p in self.space)

    def _tell(self, trial: Trial) -> None:
        pass  # random search learns nothing
