"""The site side: the pilot, container runtimes and the evaluation contract.

Nothing here imports an optimiser library, so a site installs a light package.
"""
from __future__ import annotations

from gridhpo._layout import one_identity

one_identity(__name__)
