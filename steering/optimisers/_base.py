"""The optimiser interface: ask for points, tell results. Nothing else reaches the backend."""
from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from gridhpo.errors import ConfigError
from gridhpo.steering.space import Point, SearchSpace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suggestion:
    """A point proposed by an optimiser; ``number`` is its index within the task (0, 1, ...)."""

    number: int
    params: Point


@dataclass(frozen=True)
class Trial:
    """What an optimiser knows of one point: in flight (``pending``), ``done`` or ``failed``.
    ``value`` is in the direction the optimiser minimises (the base negates for ``max``).
    In multi-objective search ``values`` holds every objective (minimised, task order;
    ``value`` is the first) and ``violations`` each constraint's (above 0: violated); both
    are None for a single objective without constraints."""

    number: int
    params: Point
    state: str
    value: float | None = None
    values: tuple[float, ...] | None = None
    violations: tuple[float, ...] | None = None


class Optimiser(abc.ABC):
    """A search algorithm behind the ask-and-tell contract.

    Contract, tested for every backend by ``tests/unit/test_optimiser_contract.py``:

    - ``ask(n)`` returns ``n`` suggestions (fewer only when the space is exhausted, and then
      ``exhausted`` is true). Each holds exactly the active parameters of the space, each
      inside its bounds and on its step grid. Numbers continue from the last one asked.
    - A suggestion stays *pending* until ``tell`` or ``tell_failure`` names its number. The
      backend takes pending points into account (they are never proposed again while in
      flight, and never told as fake results).
    - ``tell(number, value)`` reports the objective in the task's own direction; the base
      turns it into minimisation for the backend. ``tell_failure(number)`` reports a point
      that produced no value; a backend may ignore it. A backend that declares
      ``multi_objective`` is told every objective's value (``tell(number, [v1, v2, ...],
      violations)``) in multi-objective search; the others only ever get one value.
    - ``restore(trials)`` rebuilds the state after a steering restart from the recorded
      trials, without evaluating anything; a seeded backend restored this way proposes the
      same next points as one that never stopped (where ``deterministic_restore``).

    Subclasses implement ``_ask``, ``_tell`` and optionally ``_tell_failure``, ``_restore``.
    """

    name: ClassVar[str] = ""
    algorithms: ClassVar[tuple[str, ...]] = ("default",)
    #: a backend whose ask and tell take microseconds is called inline by the steering;
    #: any other runs in a worker thread (steering/driver.py)
    cheap: ClassVar[bool] = False
    #: False where ``restore`` rebuilds an equivalent but not bit-identical state (an instance
    #: attribute: for some backends it depends on the algorithm)
    deterministic_restore: bool = True
    #: the libraries the backend imports (from the ``optimisers`` extra), checked at submit
    libraries: ClassVar[tuple[str, ...]] = ()
    #: True where the backend runs the user's own program (``optimiser.command``/``image``)
    external: ClassVar[bool] = False
    #: the algorithms that take several objectives and constraints (``("*",)``: all of them);
    #: ``tell`` then carries a vector and ``Trial.values``/``violations`` hold it. Any other
    #: is refused at submit for a task with a list ``objective`` or ``constraints``
    multi_objective: ClassVar[tuple[str, ...]] = ()

    def __init__(self, space: SearchSpace, *, seed: int | None = None, algorithm: str | None = None,
                 mode: str = "min", options: Mapping[str, Any] | None = None,
                 max_points: int | None = None, parallel: int = 1,
                 modes: Sequence[str] | None = None, constraints: int = 0) -> None:
        self.space = space
        # hints some libraries size themselves by (nevergrad's budget and num_workers)
        self.max_points = max_points
        self.parallel = parallel
        self.seed = 0 if seed is None else int(seed)
        self.algorithm = algorithm or self.algorithms[0]
        self.sign = 1.0 if mode == "min" else -1.0
        # multi-objective search: one direction per objective, and the number of constraints
        self.modes = tuple(modes) if modes else (mode,)
        self.signs = tuple(1.0 if m == "min" else -1.0 for m in self.modes)
        self.sign = self.signs[0]
        self.constraints = constraints
        self.options = dict(options or {})
        self.trials: dict[int, Trial] = {}
        self.next_number = 0
        self.exhausted = False

    # ------------------------------------------------------------------ contract

    @classmethod
    def check_libraries(cls) -> None:
        """Raise ConfigError, naming the extra to install, where a library is missing."""
        for library in cls.libraries:
            try:
                importlib.import_module(library)
            except ImportError as exc:
                raise ConfigError(f"optimiser backend {cls.name!r} needs the library {library!r}, which cannot "
                                  f"be imported ({exc}); install it with: pip install 'gridhpo[optimisers]'") \
                    from None

    @classmethod
    def takes_multi_objective(cls, algorithm: str | None) -> bool:
        algo = algorithm or cls.algorithms[0]
        return cls.multi_objective == ("*",) or algo in cls.multi_objective

    @property
    def vector(self) -> bool:
        """True where results are vectors (several objectives, or constraints)."""
        return len(self.modes) > 1 or self.constraints > 0

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        """Raise ConfigError where this backend cannot express ``space`` faithfully."""

    @property
    def pending(self) -> list[Trial]:
        return [t for t in self.trials.values() if t.state == "pending"]

    def ask(self, n: int = 1) -> list[Suggestion]:
        if n <= 0 or self.exhausted:
            return []
        out: list[Suggestion] = []
        for params in self._ask(n):
            s = Suggestion(self.next_number, params)
            self.next_number += 1
            self.trials[s.number] = Trial(s.number, params, "pending")
            out.append(s)
        if len(out) < n:
            self.exhausted = True
        return out

    def tell(self, number: int, value: float | Sequence[float], violations: Sequence[float] = ()) -> None:
        """``value``: the objective, or (multi-objective) every objective in task order;
        ``violations``: each constraint's (above 0: violated)."""
        t = self.trials.get(number)
        if t is None or t.state != "pending":
            log.debug("%s: tell for point %s ignored (not pending)", self.name, number)
            return
        self.trials[number] = done = self._done(t, value, violations)
        self._tell(done)

    def _done(self, t: Trial, value: float | Sequence[float], violations: Sequence[float]) -> Trial:
        """The trial told ``value``, turned to minimisation."""
        raw = [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
        if len(raw) != len(self.signs) or len(violations) != self.constraints:
            raise ValueError(f"{self.name}: point {t.number} told {len(raw)} value(s) and {len(violations)} "
                             f"violation(s); the task has {len(self.signs)} and {self.constraints}")
        values = tuple(s * v for s, v in zip(self.signs, raw, strict=True))
        if not self.vector:
            return Trial(t.number, t.params, "done", values[0])
        return Trial(t.number, t.params, "done", values[0], values, tuple(float(v) for v in violations))

    def tell_failure(self, number: int) -> None:
        t = self.trials.get(number)
        if t is None or t.state != "pending":
            return
        failed = Trial(number, t.params, "failed")
        self.trials[number] = failed
        self._tell_failure(failed)

    def restore(self, trials: list[Trial]) -> None:
        """``trials`` in number order, values in the task's direction (as recorded)."""
        self.trials = {t.number: self._restored(t) for t in trials}
        self.next_number = max(self.trials, default=-1) + 1
        self._restore()

    def _restored(self, t: Trial) -> Trial:
        if t.state == "done" and t.values is not None:
            return self._done(Trial(t.number, t.params, "pending"), t.values, t.violations or ())
        return Trial(t.number, t.params, t.state, None if t.value is None else self.sign * t.value)

    def seen_keys(self) -> set[str]:
        """Keys of every point asked so far (pending, done or failed): never proposed again."""
        return {self.space.key(t.params) for t in self.trials.values()}

    # ------------------------------------------------------------------ backend hooks

    @abc.abstractmethod
    def _ask(self, n: int) -> list[Point]:
        """Up to ``n`` new points, given ``self.trials`` (pending ones included)."""

    @abc.abstractmethod
    def _tell(self, trial: Trial) -> None:
        """Take in one result (``trial.value`` is to be minimised)."""

    def _tell_failure(self, trial: Trial) -> None:
        """Take in one failed point; by default the backend never hears of it."""

    def _restore(self) -> None:
        """Rebuild backend state from ``self.trials``; by default tell every done trial."""
        for t in sorted(self.trials.values(), key=lambda t: t.number):
            if t.state == "done":
                self._tell(t)
            elif t.state == "failed":
                self._tell_failure(t)
