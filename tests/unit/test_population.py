"""Population-based training's decisions (issue 17): exploit, explore, lineage and pins."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridhpo.errors import ConfigError
from gridhpo.steering.population import Continue, Exploit, PBTConfig, Population, Wait, explore
from gridhpo.steering.space import parse_space

SPACE = parse_space({
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "wd": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
    "layers": {"type": "int", "low": 1, "high": 4},
    "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu"]},
    "batch": {"type": "fixed", "value": 64},
})


def population(n: int = 4, **options: object) -> Population:
    pop = Population(PBTConfig.from_options({"population": n, "perturbation_interval": 2, **options}), SPACE)
    rng = random.Random(1)
    for i in range(n):
        pop.add(i, SPACE.sample(rng))
    return pop


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), resample=st.floats(0, 1), rounds=st.integers(1, 30))
def test_explored_configs_stay_inside_bounds_and_steps(seed: int, resample: float, rounds: int) -> None:
    rng = random.Random(seed)
    point = SPACE.sample(rng)
    for _ in range(rounds):
        point = explore(point, SPACE, None, (0.8, 1.2), resample, rng)
        assert set(point) == set(SPACE.by_name)
        for name, value in point.items():
            assert SPACE.by_name[name].contains(value), (name, value)
    assert point["batch"] == 64  # fixed parameters never move


def test_explore_moves_only_the_mutable_parameters_and_categoricals_to_a_neighbour() -> None:
    rng = random.Random(3)
    start = {"lr": 0.01, "wd": 0.1, "layers": 2, "act": "relu", "batch": 64}
    for _ in range(50):
        out = explore(start, SPACE, ["act"], (0.8, 1.2), 0.0, rng)
        assert {k: v for k, v in out.items() if k != "act"} == {k: v for k, v in start.items() if k != "act"}
        assert out["act"] == "tanh"  # relu's only neighbour
    assert explore(start, SPACE, ["layers"], (0.8, 1.2), 0.0, rng)["layers"] in (1, 3)


def _judged(pop: Population) -> None:
    """Four members at step 2, the worst first: nobody is below the worst, so all go on."""
    for i in range(4):
        pop.checkpoint(i, 2, f"ckpt/{i}/2")
    for i, v in ((3, 0.9), (0, 0.1), (1, 0.2), (2, 0.3)):
        assert isinstance(pop.report(i, 2, v), Continue)


def test_the_bottom_quantile_exploits_a_top_member_with_a_checkpoint_config_and_weights_in_one_decision() -> None:
    pop = population(4, quantile_fraction=0.25)
    _judged(pop)
    before = dict(pop.members[3].config)
    decision = pop.report(3, 4, 0.8)  # still the worst of the fresh four at its next point
    assert isinstance(decision, Exploit)
    assert (decision.member, decision.source, decision.checkpoint, decision.step) == (3, 0, "ckpt/0/2", 2)
    assert pop.members[3].config == decision.config
    assert pop.members[3].step == 2  # it resumes at its parent's step, not its own
    assert pop.lineage[-1].config_before == before
    assert pop.pinned() == {"ckpt/0/2"}
    pop.restored(3, "ckpt/0/1")  # another checkpoint: the pin stays
    assert pop.pinned() == {"ckpt/0/2"}
    pop.restored(3, "ckpt/0/2")
    assert pop.pinned() == set()


def test_between_perturbation_points_and_for_late_reports_nothing_is_decided() -> None:
    pop = population()
    assert isinstance(pop.report(0, 1, 0.5), Wait)
    assert isinstance(pop.report(0, 2, 0.5), Continue)
    assert isinstance(pop.report(0, 1, 0.1), Wait)  # replayed or late: ignored
    assert pop.members[0].value == 0.5
    assert isinstance(pop.report(0, 3, 0.4), Wait)


def test_a_lost_or_slow_member_never_stalls_the_others() -> None:
    pop = population(4, quantile_fraction=0.25)
    for i in range(3):
        pop.checkpoint(i, 2, f"c{i}")
    # member 3 never reports (its pilot died): the other three are judged among themselves
    for i, v in ((2, 0.9), (0, 0.1), (1, 0.2)):
        assert isinstance(pop.report(i, 2, v), Continue)
    assert isinstance(pop.report(2, 4, 0.85), Exploit)
    # members far behind are not fresh peers: comparing step 40 with step 4 would be unfair
    for step in range(6, 41, 2):
        assert isinstance(pop.report(0, step, 0.05), Continue)


def test_replaying_the_same_reports_gives_the_same_decisions() -> None:
    def run() -> list[object]:
        pop = population(6, quantile_fraction=0.34, seed=7)
        out: list[object] = []
        rng = random.Random(11)
        for step in range(1, 13):
            for i in range(6):
                pop.checkpoint(i, step, f"c{i}.{step}")
                out.append(pop.report(i, step, rng.random()))
        return [*out, pop.lineage]

    first = run()
    assert any(isinstance(d, Exploit) for d in first)
    assert first == run()


def test_the_schedule_follows_exploits_back_through_the_parents() -> None:
    pop = population(4, quantile_fraction=0.25)
    _judged(pop)
    exploit = pop.report(3, 4, 0.8)
    assert isinstance(exploit, Exploit)
    schedule = pop.schedule(3)
    assert [s.member for s in schedule] == [exploit.source, 3]
    assert schedule[-1].parent == exploit.source and schedule[-1].config_after == exploit.config
    assert pop.schedule(0) == [pop.lineage[0]]


@pytest.mark.parametrize(("options", "message"), [
    ({"population": 1}, "early_stopping.population: must be an integer from 2"),
    ({"perturbation_interval": 0}, "early_stopping.perturbation_interval: must be a positive number"),
    ({"quantile_fraction": 0.9}, "early_stopping.quantile_fraction: must be a number from 0 to 0.5"),
    ({"factors": [1.2]}, "early_stopping.factors: must be two positive numbers"),
    ({"mutable": "lr"}, "early_stopping.mutable: must be a non-empty list"),
    ({"populaton": 4}, "early_stopping.populaton: unknown PBT setting; allowed: population"),
])
def test_bad_settings_are_one_line_errors_naming_the_field(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PBTConfig.from_options(options)
