"""The bookkeeping-URL contract: the same suite on SQLite and on PostgreSQL."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, text

from gridhpo.bookkeeping import Changes, Repository, connect, upgrade
from gridhpo.bookkeeping.db import make_engine
from gridhpo.bookkeeping.models import Base
from gridhpo.errors import ConfigError, NotFoundError
from tests.servers import postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'b.db'}"
    else:
        with postgres_database() as url:
            yield url


SPEC = {"name": "t", "objective": {"mode": "min"}, "budget": {"max_points": 3}}


def test_schema_of_the_migrations_equals_the_models(db_url: str) -> None:
    engine = connect(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_database_of_an_older_release_upgrades_with_its_data(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(insert(Base.metadata.tables["tasks"]).values(
            name="old", spec=SPEC, state="finished", created_at=time.time()))
        assert conn.execute(text("SELECT count(*) FROM tasks")).scalar() == 1
    repo = Repository(db_url)  # opening upgrades to head
    assert repo.task("old").state == "finished"
    repo.create_task("new", SPEC)
    assert [t.name for t in repo.tasks()] == ["old", "new"]


def test_tasks_by_id_or_name_and_unique_names(db_url: str) -> None:
    repo = Repository(db_url)
    tid = repo.create_task("alpha", SPEC)
    assert repo.task(tid).name == "alpha" and repo.task("alpha").id == tid and repo.task(str(tid)).id == tid
    with pytest.raises(ConfigError, match="a task named 'alpha' exists already"):
        repo.create_task("alpha", SPEC)
    with pytest.raises(NotFoundError, match="did you mean 'alpha'"):
        repo.task("alpah")


def test_a_batch_is_written_whole_and_duplicate_metrics_are_ignored(db_url: str) -> None:
    repo = Repository(db_url)
    tid = repo.create_task("b", SPEC)
    [pid] = repo.add_points(tid, [(0, {"x": 1})])
    now = time.time()
    c = Changes()
    c.new_attempts[(pid, 1)] = {"point_id": pid, "number": 1, "pilot_id": "p", "site": "s", "started_at": now,
                                "state": "running", "last_seen": now, "ended_at": None, "end_reason": None,
                                "value": None, "message": None, "stderr_tail": None}
    c.metrics.append({"attempt_id": None, "_key": (pid, 1), "point_id": pid, "seq": 0, "step": 1.0,
                      "values": {"loss": 2.0}, "at": now})
    c.point_updates[pid] = {"b_id": pid, "state": "running", "value": None, "attempt": 1, "message": None,
                            "dispatched_at": now, "ended_at": None}
    ids = repo.apply(c).attempt_ids
    aid = ids[(pid, 1)]
    again = Changes()
    again.metrics.append({"attempt_id": aid, "point_id": pid, "seq": 0, "step": 1.0,
                          "values": {"loss": 9.0}, "at": now})
    repo.apply(again)
    metrics = repo.metrics(tid)
    assert len(metrics) == 1 and metrics[0].values == {"loss": 2.0}
    assert repo.counts(tid) == {"running": 1}


def test_a_late_result_is_kept_on_an_attempt_given_up_never_on_a_finished_one(db_url: str) -> None:
    repo = Repository(db_url)
    tid = repo.create_task("late", SPEC)
    [pid] = repo.add_points(tid, [(0, {"x": 1})])
    now = time.time()
    c = Changes()
    for number, state, value in [(1, "lost", None), (2, "finished", 1.0)]:
        c.new_attempts[(pid, number)] = {
            "point_id": pid, "number": number, "pilot_id": "p", "site": "s", "started_at": now, "state": state,
            "last_seen": now, "ended_at": now, "end_reason": state, "value": value, "message": "done",
            "stderr_tail": None}
    ids = repo.apply(c).attempt_ids
    late = Changes()
    late.late_attempts += [{"b_id": ids[(pid, n)], "value": 7.0, "message": "late finished"} for n in (1, 2)]
    repo.apply(late)
    assert [(a.number, a.state, a.value, a.message) for a in repo.attempts(point_ids=[pid])] == [
        (1, "lost", 7.0, "late finished"), (2, "finished", 1.0, "done")]
