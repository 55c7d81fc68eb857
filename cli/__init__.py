"""The ``gridhpo`` command."""
from __future__ import annotations

from gridhpo._layout import one_identity
from gridhpo.cli.main import main

__all__ = ["main"]


one_identity(__name__)
