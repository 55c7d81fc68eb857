"""The lineage table of population-based training: written in the steering's batch, read
for a restart, the results and the report."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, insert, or_, select

from gridhpo.bookkeeping.models import LineageSegment

T_LINEAGE = cast(Table, LineageSegment.__table__)


def write(conn: Connection, segments: dict[tuple[int, int], dict[str, Any]]) -> None:
    """Each segment's row as the batch has it: the old row (if any) replaced in the transaction."""
    keys = list(segments)
    for i in range(0, len(keys), 200):
        chunk = keys[i:i + 200]
        conn.execute(delete(T_LINEAGE).where(or_(*(and_(T_LINEAGE.c.point_id == p, T_LINEAGE.c.segment == s)
                                                   for p, s in chunk))))
    conn.execute(insert(T_LINEAGE), list(segments.values()))


def read(conn: Connection, task_id: int) -> list[Any]:
    """A task's segments, by member and segment."""
    q = (select(T_LINEAGE).where(T_LINEAGE.c.task_id == task_id)
         .order_by(T_LINEAGE.c.member, T_LINEAGE.c.segment))
    return list(conn.execute(q))
