"""Checkpoint bookkeeping on SQLite and PostgreSQL: saved and restored checkpoints per
attempt, idempotent under redelivery, shown by `gridhpo results` and `gridhpo status`."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridhpo.bookkeeping import Changes, Repository
from gridhpo.steering.reports import format_results, results, status_rows
from tests.servers import postgres_database

SPEC = {"name": "t", "objective": {"mode": "min"}, "budget": {"max_points": 3}}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    if request.param == "sqlite":
        r = Repository(f"sqlite:///{tmp_path / 'b.db'}")
        yield r
        r.close()
    else:
        with postgres_database() as url:
            r = Repository(url)
            yield r
            r.close()


def _ckpt(seq: int, attempt: int, restored: bool = False) -> dict[str, Any]:
    return {"key": f"1-t/point-0/{seq:08d}-a{attempt}.tar", "size": 10240 + seq, "sha256": f"{seq:064x}",
            "sequence": seq, "attempt": attempt, "time": 1000.0 + seq, "restored": restored}


def test_checkpoints_per_attempt_in_results_and_redelivery_is_harmless(repo: Repository) -> None:
    tid = repo.create_task("t", SPEC)
    (pid,) = repo.add_points(tid, [(0, {"lr": 0.1})])
    now = time.time()
    base = {"pilot_id": "p", "site": "s", "started_at": now, "last_seen": now, "ended_at": now,
            "value": None, "message": None, "stderr_tail": None}
    # attempt 1 is new in the same batch as its checkpoint events (ids resolved on insert)
    ch = Changes()
    ch.new_attempts[(pid, 1)] = {"point_id": pid, "number": 1, "state": "interrupted",
                                 "end_reason": "interrupted", **base}
    for seq in (1, 2):
        ch.add_checkpoint(pid, None, 1, _ckpt(seq, 1), now)
    ids = dict(repo.apply(ch).attempt_ids)
    ch = Changes()
    ch.new_attempts[(pid, 2)] = {"point_id": pid, "number": 2, "state": "running", "end_reason": None, **base}
    ch.add_checkpoint(pid, None, 2, _ckpt(2, 1, restored=True), now)
    ch.add_checkpoint(pid, None, 2, _ckpt(3, 2), now)
    ids.update(repo.apply(ch).attempt_ids)
    # the same events delivered again change nothing
    again = Changes()
    again.add_checkpoint(pid, ids[(pid, 1)], 1, _ckpt(2, 1), now)
    again.add_checkpoint(pid, ids[(pid, 2)], 2, _ckpt(2, 1, restored=True), now)
    again.add_checkpoint(pid, ids[(pid, 2)], 2, {"sequence": "not a number"}, now)  # malformed: dropped
    repo.apply(again)
    assert len(repo.checkpoints(tid)) == 4

    (point,) = results(repo, repo.task(tid))
    a1, a2 = point["attempts"]
    assert [c["sequence"] for c in a1["checkpoints"]] == [1, 2] and a1["restored_from"] is None
    assert a2["restored_from"]["sequence"] == 2 and a2["restored_from"]["attempt"] == 1
    assert [c["sequence"] for c in a2["checkpoints"]] == [3]
    assert "1:interrupted+2 2:running<#2+1" in format_results([point], "table")


def test_status_counts_queued_and_running_retries_as_resuming(repo: Repository) -> None:
    tid = repo.create_task("t", SPEC)
    ids = repo.add_points(tid, [(0, {}), (1, {}), (2, {})])
    ch = Changes()
    for pid, state, attempt in zip(ids, ["queued", "running", "running"], [2, 3, 1], strict=True):
        ch.point_updates[pid] = {"b_id": pid, "state": state, "value": None, "attempt": attempt, "message": None,
                                 "dispatched_at": time.time(), "ended_at": None}
    repo.apply(ch)
    header, rows = status_rows(repo, [repo.task(tid)])
    assert rows[0][header.index("resuming")] == 2
