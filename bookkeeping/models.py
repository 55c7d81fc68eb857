"""The bookkeeping schema. Times are UNIX seconds (float, UTC) for speed and portability.

Point lifecycle: queued -> running -> finished | failed | stopped | paused;
running -> interrupted (walltime, lost pilot) -> queued again while attempts remain.
Attempt states: running, finished, failed, interrupted, lost, stopped, paused.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TASK_STATES = ("active", "finished", "failed", "cancelled")
POINT_STATES = ("queued", "running", "finished", "failed", "stopped", "paused", "cancelled")
TERMINAL_POINT_STATES = ("finished", "failed", "stopped", "cancelled")
ATTEMPT_STATES = ("running", "finished", "failed", "interrupted", "lost", "stopped", "paused", "cancelled")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("name", name="uq_tasks_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True, default="active")
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    token: Mapped[str | None] = mapped_column(String(64), nullable=True)  # see gridhpo/tokens.py
    token_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # the user who submitted it through the service (service/); None: submitted with the
    # bookkeeping's own credentials (`gridhpo submit` without --server), seen by admins only
    owner: Mapped[int | None] = mapped_column(ForeignKey("users.id", name="fk_tasks_owner"), nullable=True,
                                              index=True)


class Point(Base):
    __tablename__ = "points"
    __table_args__ = (
        UniqueConstraint("task_id", "number", name="uq_points_task_number"),
        Index("ix_points_task_state", "task_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    dispatched_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # multi-objective search or constraints (steering/objectives.py): each objective's and
    # constraint's value by metric, and whether the constraints held
    metric_values: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    feasible: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("point_id", "number", name="uq_attempts_point_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("points.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="running")
    pilot_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    site: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    stderr_tail: Mapped[str | None] = mapped_column(Text, nullable=True)


class MetricReport(Base):
    __tablename__ = "metric_reports"
    __table_args__ = (UniqueConstraint("attempt_id", "seq", name="uq_metric_reports_attempt_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    point_id: Mapped[int] = mapped_column(ForeignKey("points.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    step: Mapped[float | None] = mapped_column(Float, nullable=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[float] = mapped_column(Float)


class Pilot(Base):
    __tablename__ = "pilots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    site: Mapped[str] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    points_done: Mapped[int] = mapped_column(Integer, default=0)


class CheckpointRecord(Base):
    """A checkpoint an attempt saved (kind "saved") or started from (kind "restored")."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("attempt_id", "kind", "sequence", name="uq_checkpoints_attempt_kind_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    point_id: Mapped[int] = mapped_column(ForeignKey("points.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    source_attempt: Mapped[int] = mapped_column(Integer)  # the attempt that saved it
    saved_at: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float)


class User(Base):
    """A user of the service (``gridhpo admin user add``); an admin sees every task."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("name", name="uq_users_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    # `gridhpo admin user disable`: their tokens refused, no new one made; their tasks stay theirs
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ApiToken(Base):
    """A user's API token, stored as the SHA-256 digest of its text (service/accounts.py)."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("digest", name="uq_api_tokens_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class SteeringKey(Base):
    """The verifying key of the steering that holds the lock (one row, id 1), recorded as it
    takes the lock: what pilots are given with their token, wherever the token is asked for
    (a ``--no-steer`` service, ``gridhpo token`` on another machine)."""

    __tablename__ = "steering_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    since: Mapped[float] = mapped_column(Float)


class LineageSegment(Base):
    """One segment of a population-based training member (issue 17): what it ran from
    ``step`` on, where its weights came from, and how it ended. A member is a point; each of
    its segments is one or more attempts (a segment whose attempt is lost is run again)."""

    __tablename__ = "lineage"
    __table_args__ = (UniqueConstraint("point_id", "segment", name="uq_lineage_point_segment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("points.id", ondelete="CASCADE"))
    member: Mapped[int] = mapped_column(Integer)  # the point's number
    segment: Mapped[int] = mapped_column(Integer)
    step: Mapped[float] = mapped_column(Float)  # the step it starts from
    until: Mapped[float] = mapped_column(Float)  # the step it ends at (a perturbation point)
    config_before: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_after: Mapped[dict[str, Any]] = mapped_column(JSON)
    parent: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the member whose weights it copied
    parent_checkpoint: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    restore: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # the copy it must start from
    restored_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_checkpoint: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
