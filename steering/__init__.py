"""The steering: task lifecycle, search space, optimisers, schedulers and dispatch."""
from __future__ import annotations

from gridhpo._layout import one_identity

one_identity(__name__)
