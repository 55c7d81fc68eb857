"""Optuna: ``tpe`` (default), ``gp``, ``cmaes``, ``qmc``, ``nsga2`` and ``random`` samplers,
driven through Optuna's ask-and-tell interface on an in-memory study.

Type mapping (define-by-run: a parameter is suggested only when its ``when`` holds for the
values suggested before it, so an inactive parameter is never drawn):

- ``float`` -> ``FloatDistribution(low, high)``, with ``step`` -> ``FloatDistribution(step=)``,
  with ``log`` -> ``FloatDistribution(log=True)``; ``log`` with ``step`` (which Optuna refuses)
  is the log-scale draw snapped to the grid, the meaning ``SearchSpace.sample`` gives it;
- ``int`` -> ``IntDistribution(low, high, step)``, with ``log`` -> ``IntDistribution(log=True)``;
  ``log`` with a step above 1 is a log-scale float over the range widened by half a unit,
  snapped to the grid (``_common.widened``);
- ``categorical`` -> ``CategoricalDistribution`` over the choice *indices*: Optuna compares
  choices with ``==``, which would merge ``True``, ``1`` and ``1.0``;
- ``fixed`` and single-choice ``categorical`` are constants, never suggested;
- ``normal`` is refused: every Optuna distribution is bounded.

``tpe`` is multivariate (option ``multivariate: false``: each parameter modelled alone, Optuna's own
default) with Optuna's constant liar (points in flight are RUNNING trials of
the study, and TPE counts them as bad observations); on a conditional space it uses
``group=True``, which models each set of parameters that appear together jointly.
With several objectives ``multivariate`` defaults to false, Optuna's own default, which led on
the 2-objective benchmark (docs/optimisers.md).

Multi-objective search (``tpe``, ``gp`` and ``nsga2``, ``multi_objective``): the study has one
direction per objective (every value minimised, the base having turned maximised ones), each
finished point a trial with all its values, and constraints go through the sampler's
trial's ``constraints`` system attribute: each point's violations (above 0: violated), where
Optuna's samplers read them (Optuna 5 always; Optuna 4 once the sampler has a
``constraints_func``, given then), so a rebuilt study holds them too. A constrained result is
told by rebuilding the study at the next ask rather than through ``study.tell``, which would
ask a ``constraints_func`` for them. Infeasible points are ranked behind every feasible one by
TPE and NSGA-II; the GP models each constraint and weighs its acquisition by the chance that
a point is feasible. The GP's several-objective acquisition (log expected hypervolume
improvement) takes the points in flight into account as a batch (qLogEHVI), so the steering's
schedule of one ask per result, with the other points still in flight, costs it less than TPE's
constant liar (docs/optimisers.md). Options are passed to the sampler (per algorithm, see
``_OPTIONS``); a bad value is refused at submit time.

Determinism and restarts. The study holds every known point as a trial in point order:
pending ones RUNNING, results COMPLETE, failures FAIL. Each ask samples on a scratch trial with
a sampler created anew and seeded from ``(seed, point number, retry)``, closes the scratch trial
as FAIL (no sampler learns from failures), and adds the point as a trial of its own holding
exactly the recorded values; ``qmc`` keeps one scrambled sequence (seed ``seed``) and takes its
element ``point number``. So a proposal depends only on the recorded points, their states and
values, not on the order of earlier asks and tells, and ``restore`` (the study rebuilt from the
record) proposes exactly the same next points as an optimiser that never stopped:
``deterministic_restore`` holds for ``tpe``, ``gp``, ``qmc``, ``random`` and ``nsga2`` (whose
generations are assigned by point number, ``number // population_size``, rather than by the
order results arrived). ``cmaes`` keeps its evolving state in Optuna's per-trial system
attributes, which the recorded points do not hold: after a restart it starts a new CMA-ES run
warm-started from the finished points (Optuna's ``source_trials``, from 10 finished points on;
before that a fresh run), a good start but not the same next points.

``gp`` needs PyTorch, which is not in the ``optimisers`` extra: without it, it is refused at
submit time.

A proposal equal to a known point (pending, done or failed) is redrawn with another seed,
then drawn from the space's own prior (``_common.draw_unseen``). Failed points are FAIL trials,
which Optuna's samplers leave out of their models.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

try:
    import optuna
except ImportError as exc:  # the registry turns this into a one-line ConfigError at submit
    raise ImportError(f"{exc} (pip install 'gridhpo[optimisers]')") from exc
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from gridhpo.errors import ConfigError, OptimiserError
from gridhpo.steering.optimisers._base import Optimiser, Trial
from gridhpo.steering.optimisers._common import (
    build_point,
    check_options,
    derive_seed,
    draw_unseen,
    free_params,
    widened,
)
from gridhpo.steering.space import Categorical, Normal, Numeric, Param, Point, SearchSpace

log = logging.getLogger(__name__)
# Optuna logs every trial at INFO; the steering's own log says what matters
optuna.logging.set_verbosity(optuna.logging.WARNING)

_OPTIONS: dict[str, tuple[str, ...]] = {
    "tpe": ("n_startup_trials", "n_ei_candidates", "multivariate"),
    "gp": ("n_startup_trials", "deterministic_objective"),
    "cmaes": ("n_startup_trials", "sigma0", "popsize", "restart_strategy", "use_separable_cma", "with_margin",
              "lr_adapt"),
    "qmc": ("qmc_type", "scramble"),
    "nsga2": ("population_size", "mutation_prob", "crossover_prob", "swapping_prob"),
    "random": (),
}
# options Optuna stores unchecked and would only trip over at the first ask
_COUNTS = {"n_startup_trials", "n_ei_candidates", "popsize", "population_size"}
_REDRAWS = 8
_NSGA2_GENERATION = "NSGAIISampler:generation"
_CONSTRAINTS = "constraints"  # optuna.study._constrained_optimization._CONSTRAINTS_KEY
# Optuna 4's samplers consider constraints only with a constraints_func, which Optuna 5 deprecates
_OPTUNA_4 = optuna.__version__.startswith("4.")
# Optuna's warm start fits its Gaussian to the best tenth of the source points: it needs ten
_WARM_START_MIN = 10


def _sampler(algorithm: str, seed: int, options: Mapping[str, Any], *, conditional: bool = False,
             qmc_seed: int = 0, sample_id: int = 0, source: list[FrozenTrial] | None = None,
             constraints: Callable[[FrozenTrial], Sequence[float]] | None = None, multi: bool = False) -> Any:
    """A new Optuna sampler for one ask (see the module docstring on determinism)."""
    s = optuna.samplers
    opts = dict(options)
    with warnings.catch_warnings():
        # group, GP, QMC and warm-started CMA-ES are experimental in Optuna: a warning per ask
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if algorithm == "tpe":
            # group needs the multivariate model; without it each parameter is modelled alone.
            # With several objectives the default is Optuna's own, each parameter alone: on ZDT1
            # the multivariate model reached a median hypervolume of 10.00, the independent one
            # 10.82 (10 seeds; docs/optimisers.md, "Multi-objective search")
            multivariate = bool(opts.pop("multivariate", not multi))
            return s.TPESampler(seed=seed, multivariate=multivariate, group=conditional and multivariate,
                                constant_liar=True, constraints_func=constraints, **opts)
        if algorithm == "gp":
            return s.GPSampler(seed=seed, warn_independent_sampling=False, constraints_func=constraints, **opts)
        if algorithm == "cmaes":
            return s.CmaEsSampler(seed=seed, warn_independent_sampling=False, source_trials=source or None, **opts)
        if algorithm == "qmc":
            opts.setdefault("scramble", True)  # unscrambled, every seed gives the same sequence
            return _QMCSampler(sample_id, seed=qmc_seed, warn_asynchronous_seeding=False,
                               warn_independent_sampling=False,
                               independent_sampler=s.RandomSampler(seed=seed), **opts)
        if algorithm == "nsga2":
            return s.NSGAIISampler(seed=seed, constraints_func=constraints, **opts)
        return s.RandomSampler(seed=seed)


class _QMCSampler(optuna.samplers.QMCSampler):
    """Optuna's QMC sampler taking the element of the sequence it is told, not the next of a
    counter kept in the study (which a rebuilt study would start again at 0)."""

    def __init__(self, sample_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sample_id = sample_id

    def _find_sample_id(self, study: optuna.Study, search_space: dict[str, BaseDistribution]) -> int:
        return self._sample_id


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """PyTorch's intra-op threads limited to one while the GP proposes. Optuna limits them only
    inside its fit and acquisition search; the tensor work between runs on PyTorch's default (one
    thread per core), whose OpenMP worker spins between the many small operations: on kc1 (60
    points, 8 in flight, called directly) one GP run took 24.4 s of CPU for 14.0 s of wall time
    without the limit and 13.4 s for 13.5 s with it, the same points. A steering runs many tasks
    and pilots on its cores: one task's GP must not take them all."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _distribution(p: Param) -> BaseDistribution:
    """The Optuna distribution of a searched parameter (module docstring)."""
    if isinstance(p, Categorical):
        return CategoricalDistribution(list(range(len(p.choices))))
    if isinstance(p, Numeric):
        if p.log and p.step is not None and not (p.is_int and p.step == 1):
            lo, hi = widened(p)
            return FloatDistribution(lo, hi, log=True)
        if p.is_int:
            return IntDistribution(int(p.low), int(p.high), log=p.log, step=1 if p.log else int(p.step or 1))
        return FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    raise OptimiserError(f"optuna: no mapping for parameter {p.name!r}")


def _internal(p: Param, value: Any) -> Any:
    """The value Optuna holds for ``value`` of ``p`` (a choice index, or the number itself)."""
    return p.index(value) if isinstance(p, Categorical) else value


def _external(p: Param, x: Any) -> Any:
    if isinstance(p, Categorical):
        return p.choices[int(x)]
    assert isinstance(p, Numeric)
    return p.snap(float(x))


class OptunaSearch(Optimiser):
    name = "optuna"
    libraries = ("optuna",)
    algorithms = ("tpe", "gp", "cmaes", "qmc", "nsga2", "random")
    multi_objective = ("tpe", "gp", "nsga2")

    @classmethod
    def check_space(cls, space: SearchSpace, algorithm: str | None, options: Mapping[str, Any]) -> None:
        algo = algorithm or cls.algorithms[0]
        check_options(f"optuna {algo}", options, _OPTIONS[algo])
        for p in space:
            if isinstance(p, Normal):
                raise ConfigError(f"search_space.{p.name}: optuna needs bounds and cannot express an unbounded "
                                  f"normal distribution; use backend hyperopt, nevergrad or random")
        if algo == "gp":
            try:
                import torch  # noqa: F401
            except ImportError:
                raise ConfigError("optimiser.algorithm: optuna's gp needs PyTorch "
                                  "(pip install 'gridhpo[gp]')") from None
        if not isinstance(options.get("multivariate", True), bool):
            raise ConfigError(f"optimiser.options.multivariate: {options['multivariate']!r} is not true or false")
        for key in _COUNTS.intersection(options):
            v = options[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"optimiser.options.{key}: {v!r} is not an integer >= 1")
        try:
            _sampler(algo, 0, options, conditional=space.is_conditional)
        except (TypeError, ValueError) as exc:  # Optuna's own check of a sampler argument
            raise ConfigError(f"optimiser.options: optuna {algo} refuses {dict(options)}: {exc}") from None

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self._searched = {p.name: _distribution(p) for p in free_params(space)}
        self._study: optuna.Study | None = None
        # point number -> number of its trial in the study
        self._ids: dict[int, int] = {}
        # cmaes only: the system attributes Optuna wrote on each trial (its CMA-ES state)
        self._attrs: dict[int, dict[str, Any]] = {}
        self._source: list[FrozenTrial] = []
        self.deterministic_restore = self.algorithm != "cmaes"

    # ------------------------------------------------------------------ study

    def _frozen(self, trial: Trial) -> FrozenTrial:
        params = {p.name: _internal(p, trial.params[p.name]) for p in self.space
                  if p.name in self._searched and p.name in trial.params}
        attrs = dict(self._attrs.get(trial.number, {}))
        if self.algorithm == "nsga2":
            attrs[_NSGA2_GENERATION] = trial.number // int(self.options.get("population_size", 50))
        state = {"done": TrialState.COMPLETE, "failed": TrialState.FAIL}.get(trial.state, TrialState.RUNNING)
        complete = state == TrialState.COMPLETE
        if complete and trial.violations:
            attrs[_CONSTRAINTS] = list(trial.violations)  # where Optuna's samplers read them
        return optuna.trial.create_trial(
            state=state, values=self._values(trial) if complete else None, params=params,
            distributions={name: self._searched[name] for name in params}, system_attrs=attrs)

    def _values(self, trial: Trial) -> list[float]:
        if trial.values is not None:
            return list(trial.values)
        assert trial.value is not None
        return [trial.value]

    def _violations(self, frozen: FrozenTrial) -> Sequence[float]:
        """Optuna 4's ``constraints_func`` (what turns its constrained sampling on): the
        violations the trial holds."""
        return list(frozen.system_attrs[_CONSTRAINTS])

    def _add(self, study: optuna.Study, trial: Trial) -> None:
        study.add_trial(self._frozen(trial))
        self._ids[trial.number] = len(study.get_trials(deepcopy=False)) - 1

    def _live_study(self) -> optuna.Study:
        """The study: every known point as a trial in point order (pending ones RUNNING), built
        from ``self.trials`` on the first ask and after a restore, then kept up to date."""
        if self._study is None:
            self._ids = {}
            self._study = optuna.create_study(storage=optuna.storages.InMemoryStorage(),
                                              directions=["minimize"] * len(self.modes),
                                              sampler=optuna.samplers.RandomSampler(seed=self.seed))
            for t in sorted(self.trials.values(), key=lambda t: t.number):
                self._add(self._study, t)
        return self._study

    def _suggest(self, trial: optuna.Trial) -> Point:
        def value_of(p: Param) -> Any:
            d = self._searched[p.name]
            if isinstance(d, CategoricalDistribution):
                x: Any = trial.suggest_categorical(p.name, d.choices)
            elif isinstance(d, IntDistribution):
                x = trial.suggest_int(p.name, d.low, d.high, step=d.step, log=d.log)
            else:
                assert isinstance(d, FloatDistribution)
                x = trial.suggest_float(p.name, d.low, d.high, step=d.step, log=d.log)
            return _external(p, x)

        return build_point(self.space, value_of)

    # ------------------------------------------------------------------ hooks

    def _tell(self, trial: Trial) -> None:
        if trial.violations:
            self._study = None  # rebuilt at the next ask, with the violations (module docstring)
            return
        if self._study is not None and trial.number in self._ids:
            state = TrialState.COMPLETE if trial.state == "done" else TrialState.FAIL
            self._study.tell(self._ids[trial.number], self._values(trial) if state == TrialState.COMPLETE else None,
                             state=state)

    def _tell_failure(self, trial: Trial) -> None:
        self._tell(trial)

    def _restore(self) -> None:
        self._study = None
        self._attrs = {}
        if self.algorithm == "cmaes":
            self._source = self._warm_start()

    def _warm_start(self) -> list[FrozenTrial]:
        """CMA-ES's state was in the lost system attributes: a new run starts from the finished
        points, restricted to what CMA-ES searches (Optuna needs exactly those parameters):
        the numeric parameters every finished point has."""
        done = [self._frozen(t) for t in sorted(self.trials.values(), key=lambda t: t.number) if t.state == "done"]
        if len(done) < _WARM_START_MIN:
            return []  # a fresh CMA-ES run
        names = set.intersection(*(set(t.params) for t in done))
        names = {n for n in names if not isinstance(self._searched[n], CategoricalDistribution)}
        if not names:
            return []
        return [optuna.trial.create_trial(value=t.value, params={n: t.params[n] for n in names},
                                          distributions={n: self._searched[n] for n in names}) for t in done]

    def _ask(self, n: int) -> list[Point]:
        with _one_torch_thread() if self.algorithm == "gp" else contextlib.nullcontext():
            return self._ask_many(n)

    def _ask_many(self, n: int) -> list[Point]:
        seen = self.seen_keys()
        study = self._live_study()
        out: list[Point] = []
        for number in range(self.next_number, self.next_number + n):
            point = self._ask_one(study, number, seen)
            if point is None:
                break
            seen.add(self.space.key(point))
            out.append(point)
            # in flight from now on: later asks of this batch see it as a RUNNING trial
            self._add(study, Trial(number, point, "pending"))
        return out

    def _ask_one(self, study: optuna.Study, number: int, seen: set[str]) -> Point | None:
        """Sample on a scratch trial, which is then closed as FAILED (ignored by every sampler):
        the point itself joins the study as a trial of its own, holding exactly the recorded
        values (snapped to the grid), so the study stays what a restore would rebuild."""
        if self._searched:
            # a qmc element is the same on every retry: a repeat goes straight to the prior
            for retry in range(1 if self.algorithm == "qmc" else _REDRAWS):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        study.sampler = _sampler(self.algorithm, derive_seed(self.seed, number, retry), self.options,
                                                 conditional=self.space.is_conditional, qmc_seed=self.seed,
                                                 sample_id=number, source=self._source,
                                                 constraints=self._violations if self.constraints and _OPTUNA_4
                                                 else None, multi=len(self.modes) > 1)
                        trial = study.ask()
                        try:
                            point = self._suggest(trial)
                            attrs = study._storage.get_trial(trial._trial_id).system_attrs
                        finally:
                            study.tell(trial, state=TrialState.FAIL)
                except Exception as exc:  # Optuna's samplers raise plain exceptions
                    raise OptimiserError(f"optuna {self.algorithm} failed to propose point {number}: {exc}") from exc
                if self.space.key(point) not in seen:
                    if self.algorithm == "cmaes":
                        self._attrs[number] = dict(attrs)
                    return point
            log.debug("optuna: point %d kept repeating known points; drawn from the prior instead", number)
        return draw_unseen(self.space, self.seed, number, seen)


__all__ = ["OptunaSearch"]
