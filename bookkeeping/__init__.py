"""The bookkeeping database: the source of truth for tasks, points, attempts and metrics."""
from __future__ import annotations

from gridhpo.bookkeeping.db import connect, upgrade
from gridhpo.bookkeeping.repository import Changes, Repository

__all__ = ["Changes", "Repository", "connect", "upgrade"]


# One import identity: this folder is gridhpo.bookkeeping; imported as a top-level `bookkeeping` (from the
# repository root) it would be a second copy of every module (docs/architecture.md, Layout).
if __name__ != "gridhpo.bookkeeping":
    raise ImportError(f"import gridhpo.bookkeeping, not {__name__}: the repository's top-level folders are "
                      "subpackages of gridhpo")
