"""Grid search: the discretised space, enumerated once in a stable order.

Point ``k`` is the ``k``-th point of ``SearchSpace.iter_grid`` (last parameter fastest), so a
restarted steering continues at ``next_number`` with nothing to replay, no point is handed
out twice, and the task ends (``exhausted``) after the last one. Discrete parameters
(categorical, int, stepped float) take every value; a continuous range takes ``resolution``
evenly spaced values (on a log scale where ``log``). Failures change nothing.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from gridhpo.errors import ConfigError
from gridhpo.steering.optimisers._base import Optimiser, Trial
from gridhpo.steering.optimisers._common import check_options
from gridhpo.steering.space import Normal, Point, SearchSpace

DEFAULT_RESOLUTION = 5
MAX_RESOLUTION = 10_000  # values per continuous range: a log range's are kept to drop repeats


class GridSearch(Optimiser):
    name = "grid"
    algorithms = ("grid",)

    _points: Iterator[Point] | None = None
    _position = 0

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        check_options("grid", options, ("resolution",))
        res = options.get("resolution", DEFAULT_RESOLUTION)
        if isinstance(res, bool) or not isinstance(res, int) or not 2 <= res <= MAX_RESOLUTION:
            raise ConfigError(f"optimiser.options.resolution: {res!r} is not an integer from 2 to {MAX_RESOLUTION}")
        for p in space:
            if isinstance(p, Normal):
                raise ConfigError(f"search_space.{p.name}: grid cannot enumerate an unbounded normal "
                                  f"distribution; use a bounded type or backend hyperopt, nevergrad or random")

    @property
    def resolution(self) -> int:
        return int(self.options.get("resolution", DEFAULT_RESOLUTION))

    def _restore(self) -> None:
        self._points = None

    def _ask(self, n: int) -> list[Point]:
        if self._points is None or self._position != self.next_number:
            # point k is the k-th grid point: skip what was handed out before a restart
            self._points = itertools.islice(self.space.iter_grid(self.resolution), self.next_number, None)
            self._position = self.next_number
        out = list(itertools.islice(self._points, n))
        self._position += len(out)
        return out

    def _tell(self, trial: Trial) -> None:
        pass  # a grid does not adapt
