"""The API's request and response bodies: pydantic models, so that /openapi.json is exact.
Requests refuse unknown fields (422 naming the field)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitRequest(Strict):
    task: dict[str, Any] = Field(description="The task file as a JSON mapping (docs/taskfile.md).")
    name: str | None = Field(None, max_length=128, description="Use this task name instead of the task's.")


class TokenRequest(Strict):
    revoke: bool = Field(False, description="Replace the token: pilots holding the old one get nothing more.")
    expires: str | None = Field(None, max_length=32, description="The token stops working after this long (12h).")


class TaskRef(BaseModel):
    id: int
    name: str
    state: str


class TaskStatus(BaseModel):
    """One row of ``gridhpo status``, with the task's message and pilots."""

    id: int
    name: str
    state: str
    points: str = Field(description="Points created / budget.max_points.")
    queued: int
    running: int
    stale: int
    resuming: int
    paused: int
    finished: int
    stopped: int
    failed: int
    best: str = Field(description="The best value, formatted; empty when no point finished.")
    message: str | None
    optimiser: str = Field(description="The backend and algorithm, and why, when `auto` chose them.")
    pilots: int = Field(description="Pilots seen (in the status of one task; 0 in the list).")
    sites: list[str]


class TaskList(BaseModel):
    tasks: list[TaskStatus]


class Checkpoint(BaseModel):
    sequence: int
    key: str
    size: int
    sha256: str
    attempt: int
    saved_at: float


class AttemptResult(BaseModel):
    number: int
    state: str
    pilot: str | None
    site: str | None
    started_at: float | None
    ended_at: float | None
    end_reason: str | None
    value: float | None
    message: str | None
    stderr_tail: str | None
    restored_from: Checkpoint | None
    checkpoints: list[Checkpoint]


class PointResult(BaseModel):
    id: int
    number: int
    params: dict[str, Any]
    state: str
    value: float | None
    message: str | None
    reached: float | None
    attempts: list[AttemptResult]
    metric_values: dict[str, float] | None = Field(
        None, description="Multi-objective search or constraints: each objective's and constraint's value.")
    feasible: bool | None = Field(None, description="Whether every constraint held (null without constraints).")


class Lineage(BaseModel):
    mode: str = Field(description="The objective's mode: min or max.")
    segments: list[dict[str, Any]] = Field(
        description="Every member's segments (member, segment, step, until, config before and after, parent, "
                    "the checkpoints copied and restored, value): empty for a task without population-based training.")


class Results(BaseModel):
    id: int
    name: str
    mode: str = Field(description="The objective's mode: min or max.")
    total: int = Field(description="How many points the task has.")
    points: list[PointResult]
    objective: dict[str, Any] | list[dict[str, Any]] = Field(
        description="The task's objective as its task file gives it: one, or a list (multi-objective search).")
    constraints: list[dict[str, Any]] = Field(description="The task's constraints (metric, min, max).")


class PilotToken(BaseModel):
    id: int
    name: str
    token: str = Field(description="The task's pilot token (`gridhpo pilot --token`).")
    expires_at: float | None
    replaced: bool


class Me(BaseModel):
    name: str
    admin: bool


class Error(BaseModel):
    error: str = Field(description="What is wrong, in one line.")
    field: str | None = Field(None, description="The request field at fault, dotted (task.budget.max_points).")
