"""The best member's schedule (steering/lineage.py): through each exploit back into the
parent it copied, each part cut at the step it was copied at."""
from __future__ import annotations

from typing import Any

from gridhpo.bookkeeping.repository import TaskRow
from gridhpo.steering.lineage import best_member, format_schedule, mode_of, schedule, schedule_steps


def _seg(member: int, segment: int, step: float, until: float, lr: float, value: float,
         parent: int | None = None) -> dict[str, Any]:
    return {"member": member, "segment": segment, "step": step, "until": until, "config_before": {},
            "config_after": {"lr": lr}, "parent": parent, "parent_checkpoint": None, "value": value,
            "ended_at": 1.0}


SEGS = [
    _seg(0, 0, 0, 2, 0.1, 0.5), _seg(0, 1, 2, 4, 0.1, 0.4), _seg(0, 2, 4, 6, 0.1, 0.35),
    _seg(1, 0, 0, 2, 0.01, 0.9), _seg(1, 1, 2, 4, 0.12, 0.3, parent=0), _seg(1, 2, 4, 6, 0.12, 0.2),
    _seg(2, 0, 0, 2, 0.5, 0.8), _seg(2, 1, 2, 4, 0.5, 0.7), _seg(2, 2, 4, 6, 0.1, 0.25, parent=1),
]
TASK = TaskRow(1, "t", {"objective": {"mode": "min"}, "early_stopping": {"scheduler": "pbt"}}, "finished",
               None, 0.0, None)


def test_the_schedule_follows_each_exploit_into_its_parent() -> None:
    assert best_member(mode_of(TASK), SEGS) == 1
    sched = schedule(SEGS, 2)
    assert [(s["member"], s["step"], s["until"]) for s in sched] == [(0, 0, 2), (1, 2, 4), (2, 4, 6)]
    assert schedule_steps(sched) == [(0, {"lr": 0.1}), (2, {"lr": 0.12}), (4, {"lr": 0.1})]


def test_the_table_names_the_best_member_and_where_it_copied_from() -> None:
    text = format_schedule(mode_of(TASK), SEGS, "table")
    assert text.splitlines()[0] == "best member: 1"
    assert "from member 0 at 2" in text
