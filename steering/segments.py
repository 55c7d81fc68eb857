"""Segmented HPO (phpo's ``segmentSpecFile``): one model per segment, each its own search.

The segment spec file is phpo's: a JSON list of ``{"name": unique_name, "files": [...]}`` (or
``"datasets": [...]`` instead of ``files``), one per segment, in order. phpo's
``searchSpaceFile`` is then one search space cloned for every segment, or a list of them in the
segments' order (each a space, or phpo's own ``{"model_id": i, "search_space": {...}}``).

gridhpo makes one task per segment in one submission: ``<name>.<segment>``, each with its own
steering run on its own space, its own budget (phpo's ``maxPoints`` is per segment: it multiplies
the task's total by the number of segments) and its own best point. ``%SEGMENT_NAME`` in the
evaluation command becomes the segment's name, and every evaluation of a segment has
``GRIDHPO_SEGMENT`` (its name) and ``GRIDHPO_SEGMENTED_TASK`` (the submission's name) in its
environment; the latter groups the tasks for ``gridhpo segments NAME``, the one report.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridhpo.errors import ConfigError, unknown_name
from gridhpo.steering.objectives import goals_of
from gridhpo.steering.reports import best_point

if TYPE_CHECKING:  # the bookkeeping needs the server extra; submit --server does not
    from gridhpo.bookkeeping.repository import Repository, TaskRow

GROUP_ENV = "GRIDHPO_SEGMENTED_TASK"
SEGMENT_ENV = "GRIDHPO_SEGMENT"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KEYS = ("name", "files", "datasets", "id")


@dataclass(frozen=True)
class Segment:
    name: str
    inputs: tuple[str, ...]  # the training-dataset files (or constituent datasets) of the segment


def load(path: Path) -> list[Segment]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the segment spec file ({exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: a segment spec is a non-empty JSON list of {{\"name\": ..., \"files\": [...]}}")
    out: list[Segment] = []
    for i, item in enumerate(raw):
        out.append(_segment(item, f"{path}: [{i}]"))
    names = [s.name for s in out]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: segment name {name!r} is given {names.count(name)} times (names are unique)")
    return out


def _segment(item: object, where: str) -> Segment:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be an object {{\"name\": ..., \"files\": [...]}}")
    for key in item:
        if key not in _KEYS:
            raise ConfigError(f"{where}: {unknown_name('segment key', str(key), _KEYS)}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > 64:
        raise ConfigError(f"{where}.name: {name!r} must be letters, digits, '.', '_' or '-' (at most 64): it "
                          "names the segment's task")
    if "files" in item and "datasets" in item:
        raise ConfigError(f"{where}: give files or datasets, not both")
    inputs = item.get("files", item.get("datasets", []))
    if not isinstance(inputs, list) or not all(isinstance(f, str) and f for f in inputs):
        raise ConfigError(f"{where}.{'datasets' if 'datasets' in item else 'files'}: {inputs!r} is not a list of names")
    return Segment(name, tuple(inputs))


def spaces(space: object, segments: list[Segment], source: str) -> list[dict[str, Any]]:
    """The search space of each segment: one cloned for all, or a list in the segments' order."""
    if isinstance(space, dict):
        return [space for _ in segments]
    if not isinstance(space, list) or len(space) != len(segments):
        raise ConfigError(f"{source}: with segmentSpecFile the search space is one object (cloned for every "
                          f"segment) or a list of {len(segments)} (one per segment, in order)")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(space):
        if isinstance(item, dict) and set(item) == {"model_id", "search_space"}:
            if item["model_id"] != i:
                raise ConfigError(f"{source}: [{i}].model_id: {item['model_id']!r} must be {i} (the segment's "
                                  "place in the segment spec)")
            item = item["search_space"]
        if not isinstance(item, dict):
            raise ConfigError(f"{source}: [{i}]: a search space is a JSON object of name: {{method, dimension}}")
        out.append(item)
    return out


def segment_task(task: dict[str, Any], segment: Segment, group: str) -> dict[str, Any]:
    """``task`` (already made for this segment's space and name) tagged as one of ``group``."""
    task["evaluation"]["env"] = {**task["evaluation"].get("env", {}), SEGMENT_ENV: segment.name, GROUP_ENV: group}
    return task


def group_tasks(repo: Repository, group: str) -> list[TaskRow]:
    """The tasks of a segmented submission, in segment order (their ids)."""
    rows = [t for t in repo.tasks() if t.spec["evaluation"].get("env", {}).get(GROUP_ENV) == group]
    if not rows:
        raise ConfigError(f"no segmented task {group!r}: `gridhpo status` lists the tasks "
                          "(a segment's task is named <name>.<segment>)")
    return sorted(rows, key=lambda t: t.id)


def report(repo: Repository, group: str) -> list[dict[str, Any]]:
    """One row per segment: its task, state, counts and its own best point."""
    out = []
    for row in group_tasks(repo, group):
        counts = repo.counts(row.id)
        best = best_point(repo, row)
        out.append({"segment": row.spec["evaluation"]["env"][SEGMENT_ENV], "task": row.name, "id": row.id,
                    "state": row.state, "finished": counts.get("finished", 0), "failed": counts.get("failed", 0),
                    "metric": goals_of(row.spec).objectives[0].metric, "best_point": best[0] if best else None,
                    "best_value": best[1] if best else None, "best_params": best[2] if best else None})
    return out
