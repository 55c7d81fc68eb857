"""The central service (``gridhpo server``): users, API tokens and the HTTP API over the
bookkeeping, with the steering in the same process. ``service.client`` needs only the
standard library, so a light install can talk to a service; the rest needs the ``server``
extra (FastAPI, Uvicorn)."""
from __future__ import annotations

# One import identity: this folder is gridhpo.service; imported as a top-level `service` (from the
# repository root) it would be a second copy of every module (docs/architecture.md, Layout).
if __name__ != "gridhpo.service":
    raise ImportError(f"import gridhpo.service, not {__name__}: the repository's top-level folders are "
                      "subpackages of gridhpo")
