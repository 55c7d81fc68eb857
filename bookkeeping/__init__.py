"""The bookkeeping database: the source of truth for tasks, points, attempts and metrics."""
from __future__ import annotations

from gridhpo._layout import one_identity
from gridhpo.bookkeeping.db import connect, upgrade
from gridhpo.bookkeeping.repository import Changes, Repository

__all__ = ["Changes", "Repository", "connect", "upgrade"]


one_identity(__name__)
