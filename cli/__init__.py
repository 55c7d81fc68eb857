"""The ``gridhpo`` command."""
from __future__ import annotations

from gridhpo.cli.main import main

__all__ = ["main"]
