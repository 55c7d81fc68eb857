"""The ``gridhpo`` command."""
from __future__ import annotations

from gridhpo.cli.main import main

__all__ = ["main"]


# One import identity: this folder is gridhpo.cli; imported as a top-level `cli` (from the
# repository root) it would be a second copy of every module (docs/architecture.md, Layout).
if __name__ != "gridhpo.cli":
    raise ImportError(f"import gridhpo.cli, not {__name__}: the repository's top-level folders are "
                      "subpackages of gridhpo")
