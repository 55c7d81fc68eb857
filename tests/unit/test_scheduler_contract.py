"""One suite over every scheduler (gridhpo.testing.schedulers), then each rule on constructed metric histories."""
from __future__ import annotations

from dataclasses import replace

import pytest

from gridhpo.errors import UnknownNameError
from gridhpo.steering import schedulers
from gridhpo.steering.schedulers import Decision
from gridhpo.testing.schedulers import CONFIG, SchedulerCase, SchedulerContract, history

ALL = sorted(schedulers.REGISTRY)


class TestSchedulers(SchedulerContract):
    @pytest.fixture(params=ALL)
    def scheduler_case(self, request: pytest.FixtureRequest) -> SchedulerCase:
        # PBT never stops a point: its members run to the end, in segments (lifecycle/pbt.py)
        return SchedulerCase(schedulers.get(request.param), stops=request.param not in ("none", "pbt"))


def test_pbt_checks_its_settings_and_the_budget_at_submit() -> None:
    from gridhpo.errors import ConfigError
    from gridhpo.steering.taskfile import parse_task

    raw = {"name": "p", "search_space": {"lr": {"type": "float", "low": 0.01, "high": 1}},
           "budget": {"max_points": 4}, "evaluation": {"command": "true"},
           "early_stopping": {"scheduler": "pbt", "options": {"population": 4, "quantile_fraction": 0.7}}}
    with pytest.raises(ConfigError, match=r"early_stopping.options.quantile_fraction: must be a number from 0 to 0.5"):
        parse_task(raw, "p.yaml")
    raw["early_stopping"]["options"] = {"population": 8}
    with pytest.raises(ConfigError, match=r"budget.max_points: a PBT task runs one point per member"):
        parse_task(raw, "p.yaml")


def test_none_lets_everything_run() -> None:
    s = schedulers.get("none")(CONFIG)
    assert {s.report(*r) for r in history(4)} == {Decision.CONTINUE}


def test_asha_promotes_the_best_third_at_each_rung_and_stops_the_rest() -> None:
    s = schedulers.get("asha")(replace(CONFIG, grace=0))
    # rung 1: values arrive in this order; the best floor(n/3) (at least 1) go on
    values = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2]
    decisions = [s.report(n, 1.0, v) for n, v in enumerate(values)]
    assert decisions == [
        Decision.CONTINUE,  # alone at its rung
        Decision.STOP,  # 0.9: the best 1 of 2 is 0.5
        Decision.CONTINUE,  # 0.1: the best so far
        Decision.STOP,  # 0.7
        Decision.STOP,  # 0.3: 2nd of 5, the best 1 of 5 is 0.1
        Decision.STOP,  # 0.8
        Decision.CONTINUE,  # 0.2: 2nd of 7, inside the best 2
    ]


def test_asha_rungs_and_promotion_to_the_next_rung() -> None:
    from gridhpo.steering.schedulers.asha import rungs

    assert rungs(1, 27, 3) == [1.0, 3.0, 9.0]
    s = schedulers.get("asha")(replace(CONFIG, grace=0))
    for n in range(6):
        s.report(n, 1.0, 1.0 + n)  # point 0 best at rung 1
    assert s.report(0, 2.0, 0.9) is Decision.CONTINUE  # between rungs: nothing to judge
    assert s.report(0, 3.0, 0.8) is Decision.CONTINUE  # first at rung 3: promoted
    assert s.report(1, 3.0, 5.0) is Decision.STOP  # worse than the best third at rung 3


def test_asha_revives_a_paused_point_once_later_points_did_worse() -> None:
    s = schedulers.get("asha")(replace(CONFIG, grace=0, revive=True))
    assert s.report(0, 1.0, 0.2) is Decision.CONTINUE
    assert s.report(1, 1.0, 0.5) is Decision.PAUSE  # top third of [0.2, 0.5] is 0.2
    assert s.revive([1]) == []
    for n, v in enumerate([0.9, 0.8, 0.95, 0.85], start=2):
        s.report(n, 1.0, v)
    assert s.revive([1]) == [1]  # now 2nd of 6: inside the best third


def test_hyperband_spreads_points_over_brackets() -> None:
    s = schedulers.get("hyperband")(replace(CONFIG, grace=0))
    assert len(s.brackets) == 3  # rungs 1, 3, 9
    assert [s.bracket(n).rungs[0] for n in range(3)] == [1.0, 3.0, 9.0]
    # bracket 2 (numbers 2, 5, ...) judges nothing before step 9
    for n in (2, 5, 8):
        assert s.report(n, 3.0, 10.0 + n) is Decision.CONTINUE
    assert s.report(2, 9.0, 1.0) is Decision.CONTINUE
    assert s.report(5, 9.0, 9.0) is Decision.STOP


def test_median_rule_stops_points_worse_than_the_median_of_the_others() -> None:
    s = schedulers.get("median")(replace(CONFIG, scheduler="median", grace=2))
    for n, v in enumerate([0.3, 0.4, 0.5]):
        for step in (1.0, 2.0, 3.0):
            assert s.report(n, step, v) is Decision.CONTINUE  # fewer than 3 others at first
    assert s.report(3, 1.0, 0.9) is Decision.CONTINUE  # warm-up
    assert s.report(3, 2.0, 0.9) is Decision.STOP  # median of others at step 2 is 0.4
    assert s.report(4, 2.0, 0.35) is Decision.CONTINUE


def test_unknown_scheduler_name_gets_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'asha'"):
        schedulers.get("ahsa")
