"""The central service (``gridhpo server``): users, API tokens and the HTTP API over the
bookkeeping, with the steering in the same process. ``service.client`` needs only the
standard library, so a light install can talk to a service; the rest needs the ``server``
extra (FastAPI, Uvicorn)."""
from __future__ import annotations

from gridhpo._layout import one_identity

one_identity(__name__)
