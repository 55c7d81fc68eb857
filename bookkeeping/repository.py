"""The repository API: every read and write of the bookkeeping goes through here.

Hot-path writes come as one ``Changes`` batch applied in one transaction with executemany
statements, so the steering's cost per point does not grow with the task and a batch is
either wholly recorded or not at all. Driver errors are re-raised as BookkeepingError.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from gridhpo.bookkeeping import lineage
from gridhpo.bookkeeping.changes import Changes as Changes  # where the batch was, and still is imported from
from gridhpo.bookkeeping.db import connect
from gridhpo.bookkeeping.models import Attempt, CheckpointRecord, MetricReport, Pilot, Point, Task
from gridhpo.config import redact
from gridhpo.errors import BookkeepingError, ConfigError, NotFoundError

log = logging.getLogger(__name__)

T_TASK = cast(Table, Task.__table__)
T_POINT = cast(Table, Point.__table__)
T_ATTEMPT = cast(Table, Attempt.__table__)
T_METRIC = cast(Table, MetricReport.__table__)
T_PILOT = cast(Table, Pilot.__table__)
T_CHECKPOINT = cast(Table, CheckpointRecord.__table__)


@dataclass(frozen=True)
class Applied:
    """Ids the database gave: new attempts by (point_id, number), new points in order."""

    attempt_ids: dict[tuple[int, int], int]
    point_ids: list[int]


@dataclass(frozen=True)
class TaskRow:
    id: int
    name: str
    spec: dict[str, Any]
    state: str
    message: str | None
    created_at: float
    ended_at: float | None
    token: str | None = None
    token_expires_at: float | None = None


def _task_row(r: Any) -> TaskRow:
    return TaskRow(r.id, r.name, r.spec, r.state, r.message, r.created_at, r.ended_at, r.token, r.token_expires_at)


# Columns of an attempt that an update may set; all updates of a batch set the same ones
# so that executemany can run them as one statement.
ATTEMPT_FIELDS = ("state", "last_seen", "ended_at", "end_reason", "value", "message", "stderr_tail")
POINT_FIELDS = ("state", "value", "attempt", "message", "dispatched_at", "ended_at", "metric_values", "feasible")
_NO_OUTCOME = {"metric_values": None, "feasible": None}


class Repository:
    def __init__(self, url: str | None = None, *, engine: Engine | None = None, migrate: bool = True) -> None:
        from gridhpo import config

        self.url = config.db_url(url)
        self.engine = engine if engine is not None else connect(self.url, migrate=migrate)
        self._upd_attempt = (
            update(T_ATTEMPT).where(T_ATTEMPT.c.id == bindparam("b_id"))
            .values({f: bindparam(f) for f in ATTEMPT_FIELDS})
        )
        self._upd_point = (
            update(T_POINT).where(T_POINT.c.id == bindparam("b_id"))
            .values({f: bindparam(f) for f in POINT_FIELDS})
        )

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        """One transaction; a lost connection (server restart) is retried by the caller."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (IntegrityError, NotFoundError, ConfigError):
            raise
        except SQLAlchemyError as exc:
            raise BookkeepingError(f"bookkeeping {redact(self.url)}: {what} failed: {exc.__class__.__name__}: "
                                   f"{str(exc).splitlines()[0]}") from exc

    def retrying(self, what: str, fn: Any, attempts: int = 8) -> Any:
        """Run ``fn()`` again after an operational error (database restarting), with backoff."""
        delay = 0.2
        for i in range(attempts):
            try:
                return fn()
            except BookkeepingError as exc:
                cause = exc.__cause__
                if not isinstance(cause, OperationalError) or i == attempts - 1:
                    raise
                log.warning("%s: %s; retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ tasks

    def create_task(self, name: str, spec: dict[str, Any], token: str | None = None) -> int:
        try:
            with self._tx("create task") as conn:
                result = conn.execute(
                    insert(T_TASK).values(name=name, spec=spec, state="active", created_at=time.time(), token=token)
                    .returning(T_TASK.c.id)
                )
                return int(result.scalar_one())
        except IntegrityError as exc:
            existing = self.find_task(name)
            ident = f" (id {existing.id}, {existing.state})" if existing else ""
            raise ConfigError(f"a task named {name!r} exists already{ident}; choose another name") from exc

    def find_task(self, ref: str | int) -> TaskRow | None:
        with self._tx("read task") as conn:
            row = None
            if isinstance(ref, int) or str(ref).isdigit():
                row = conn.execute(select(T_TASK).where(T_TASK.c.id == int(ref))).first()
            if row is None:
                row = conn.execute(select(T_TASK).where(T_TASK.c.name == str(ref))).first()
            return _task_row(row) if row is not None else None

    def task(self, ref: str | int) -> TaskRow:
        row = self.find_task(ref)
        if row is None:
            names = [t.name for t in self.tasks()]
            from gridhpo.errors import unknown_name

            hint = str(unknown_name("task", str(ref), names)).removeprefix("unknown task ") if names else ""
            raise NotFoundError(f"no task {str(ref)!r} in {redact(self.url)}" + (f" ({hint})" if hint else ""))
        return row

    def tasks(self, state: str | None = None) -> list[TaskRow]:
        with self._tx("list tasks") as conn:
            q = select(T_TASK).order_by(T_TASK.c.id)
            if state is not None:
                q = q.where(T_TASK.c.state == state)
            return [_task_row(r) for r in conn.execute(q)]

    def set_token(self, task_id: int, token: str, expires_at: float | None) -> None:
        with self._tx("set token") as conn:
            conn.execute(update(T_TASK).where(T_TASK.c.id == task_id).values(token=token, token_expires_at=expires_at))

    def set_task_state(self, task_id: int, state: str, message: str | None = None) -> None:
        with self._tx("update task") as conn:
            ended = time.time() if state != "active" else None
            conn.execute(
                update(T_TASK).where(T_TASK.c.id == task_id).values(state=state, message=message, ended_at=ended)
            )

    # ------------------------------------------------------------------ points

    def add_points(self, task_id: int, points: Sequence[tuple[int, dict[str, Any]]]) -> list[int]:
        """Insert new queued points (number, params); returns their ids in order."""
        changes = Changes(new_points=[{"task_id": task_id, "number": n, "params": p} for n, p in points])
        return self.apply(changes).point_ids if points else []

    def points(self, task_id: int, states: Sequence[str] | None = None, number: int | None = None) -> list[Any]:
        with self._tx("read points") as conn:
            q = select(T_POINT).where(T_POINT.c.task_id == task_id).order_by(T_POINT.c.number)
            if states is not None:
                q = q.where(T_POINT.c.state.in_(list(states)))
            if number is not None:
                q = q.where(T_POINT.c.number == number)
            return list(conn.execute(q))

    def counts(self, task_id: int) -> dict[str, int]:
        with self._tx("count points") as conn:
            rows = conn.execute(
                select(T_POINT.c.state, func.count()).where(T_POINT.c.task_id == task_id).group_by(T_POINT.c.state)
            )
            return {r[0]: int(r[1]) for r in rows}

    def attempts(self, point_ids: Sequence[int] | None = None, task_id: int | None = None) -> list[Any]:
        with self._tx("read attempts") as conn:
            q = select(T_ATTEMPT).order_by(T_ATTEMPT.c.point_id, T_ATTEMPT.c.number)
            if point_ids is not None:
                q = q.where(T_ATTEMPT.c.point_id.in_(list(point_ids)))
            if task_id is not None:
                q = q.where(T_ATTEMPT.c.point_id.in_(_task_points(task_id)))
            return list(conn.execute(q))

    def metrics(self, task_id: int, point_ids: Sequence[int] | None = None) -> list[Any]:
        with self._tx("read metrics") as conn:
            q = (select(T_METRIC).where(T_METRIC.c.point_id.in_(_task_points(task_id)))
                 .order_by(T_METRIC.c.point_id, T_METRIC.c.attempt_id, T_METRIC.c.seq))
            if point_ids is not None:
                q = q.where(T_METRIC.c.point_id.in_(list(point_ids)))
            return list(conn.execute(q))

    def checkpoints(self, task_id: int, point_ids: Sequence[int] | None = None) -> list[Any]:
        """Checkpoint records of a task's attempts, by point, attempt and sequence."""
        with self._tx("read checkpoints") as conn:
            q = (select(T_CHECKPOINT).where(T_CHECKPOINT.c.point_id.in_(_task_points(task_id)))
                 .order_by(T_CHECKPOINT.c.point_id, T_CHECKPOINT.c.attempt_id, T_CHECKPOINT.c.sequence))
            if point_ids is not None:
                q = q.where(T_CHECKPOINT.c.point_id.in_(list(point_ids)))
            return list(conn.execute(q))

    def lineage(self, task_id: int) -> list[Any]:
        """The segments of a population-based training task's members, by member and segment."""
        with self._tx("read lineage") as conn:
            return lineage.read(conn, task_id)

    def pilots(self, task_id: int | None = None) -> list[Any]:
        with self._tx("read pilots") as conn:
            q = select(T_PILOT).order_by(T_PILOT.c.first_seen)
            if task_id is not None:
                q = q.where(T_PILOT.c.task_id == task_id)
            return list(conn.execute(q))

    def attempt_ids(self, keys: Sequence[tuple[int, int, int]]) -> dict[tuple[int, int, int], tuple[int, str]]:
        """Ids and states of attempts by (task_id, point_id, number), for events about attempts
        not in memory. The task is part of the key: an event's credentials are its task's, so it
        must never find an attempt of another task's point."""
        if not keys:
            return {}
        wanted = set(keys)
        pids = sorted({k[1] for k in wanted})
        with self._tx("read attempt ids") as conn:
            rows = conn.execute(
                select(T_ATTEMPT.c.id, T_ATTEMPT.c.state, T_ATTEMPT.c.point_id, T_ATTEMPT.c.number, T_POINT.c.task_id)
                .join(T_POINT, T_POINT.c.id == T_ATTEMPT.c.point_id)
                .where(T_ATTEMPT.c.point_id.in_(pids), T_POINT.c.task_id.in_(sorted({k[0] for k in wanted})))
            )
            return {key: (r.id, r.state) for r in rows if (key := (r.task_id, r.point_id, r.number)) in wanted}

    # ------------------------------------------------------------------ batches

    def apply(self, changes: Changes) -> Applied:
        """Write one batch atomically."""
        with self._tx("record events") as conn:
            point_ids: list[int] = []
            if changes.new_points:
                now = time.time()
                rows = [dict(p, state="queued", attempt=1, created_at=now, dispatched_at=now)
                        for p in changes.new_points]
                stmt = insert(T_POINT).returning(T_POINT.c.id, sort_by_parameter_order=True)
                point_ids = [int(r.id) for r in conn.execute(stmt, rows)]
            new_ids: dict[tuple[int, int], int] = {}
            if changes.new_attempts:
                result = conn.execute(
                    insert(T_ATTEMPT).returning(T_ATTEMPT.c.id, T_ATTEMPT.c.point_id, T_ATTEMPT.c.number,
                                                sort_by_parameter_order=True),
                    list(changes.new_attempts.values()),
                )
                new_ids = {(r.point_id, r.number): r.id for r in result}
            if changes.attempt_updates:
                conn.execute(self._upd_attempt, list(changes.attempt_updates.values()))
            if changes.point_updates:
                # rows built by hand (tests, benchmarks) predate the multi-objective columns
                conn.execute(self._upd_point, [{**_NO_OUTCOME, **row} for row in changes.point_updates.values()])
            if changes.late_attempts:
                # a finished attempt holds its point's result: a repeat of it (redelivered, or
                # a second pilot's run of the same attempt) is no late result to record
                conn.execute(
                    update(T_ATTEMPT).where(T_ATTEMPT.c.id == bindparam("b_id"), T_ATTEMPT.c.state != "finished")
                    .values(value=bindparam("value"), message=bindparam("message")),
                    changes.late_attempts,
                )
            if changes.metrics:
                rows = _with_attempt_ids(changes.metrics, new_ids)
                if rows:
                    conn.execute(self._insert_ignore(T_METRIC, ["attempt_id", "seq"]), rows)
            if changes.pilots:
                self._upsert_pilots(conn, changes)
            if changes.checkpoints:
                rows = _with_attempt_ids(changes.checkpoints, new_ids)
                if rows:
                    conn.execute(self._insert_ignore(T_CHECKPOINT, ["attempt_id", "kind", "sequence"]), rows)
            if changes.segments:
                lineage.write(conn, changes.segments)
            return Applied(new_ids, point_ids)

    def _insert_ignore(self, table: Any, keys: list[str]) -> Any:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
        if self.engine.dialect.name == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
        return insert(table).prefix_with("IGNORE")

    def _upsert_pilots(self, conn: Connection, changes: Changes) -> None:
        ids = list(changes.pilots)
        existing = {r.id: r for r in conn.execute(select(T_PILOT).where(T_PILOT.c.id.in_(ids)))}
        new = [dict(p, points_done=changes.pilot_done.get(pid, 0))
               for pid, p in changes.pilots.items() if pid not in existing]
        if new:
            conn.execute(self._insert_ignore(T_PILOT, ["id"]), new)
        upd = [
            {"b_id": pid, "last_seen": p["last_seen"],
             "points_done": existing[pid].points_done + changes.pilot_done.get(pid, 0)}
            for pid, p in changes.pilots.items() if pid in existing
        ]
        if upd:
            conn.execute(
                update(T_PILOT).where(T_PILOT.c.id == bindparam("b_id"))
                .values(last_seen=bindparam("last_seen"), points_done=bindparam("points_done")),
                upd,
            )


def _with_attempt_ids(rows: list[dict[str, Any]], new_ids: dict[tuple[int, int], int]) -> list[dict[str, Any]]:
    """Rows whose attempt was created in the same batch get its id (they carry ``_key``:
    (point_id, attempt number)); rows whose attempt is unknown are dropped."""
    out = []
    for r in rows:
        row = dict(r)
        key = row.pop("_key", None)
        if row.get("attempt_id") is None:
            row["attempt_id"] = new_ids.get(key)
        if row["attempt_id"] is not None:
            out.append(row)
    return out


def _task_points(task_id: int) -> Any:
    """The ids of a task's points, as a subquery."""
    return select(T_POINT.c.id).where(T_POINT.c.task_id == task_id)
