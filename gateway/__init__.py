"""The pilot gateway: pilots that reach the service over HTTPS alone (issue 15 item 4).

A thin proxy onto the broker the steering uses: ``pilot_router`` is mounted into the
service's FastAPI app; ``protocol/httptransport.py`` is the pilot's side. Needs the
``server`` extra (FastAPI); importing ``gridhpo`` or a pilot never imports this package.
"""
from __future__ import annotations

from gridhpo._layout import one_identity
from gridhpo.gateway.auth import TokenLookup, repository_tokens
from gridhpo.gateway.leases import Gateway
from gridhpo.gateway.router import PREFIX, pilot_router

__all__ = ["PREFIX", "Gateway", "TokenLookup", "pilot_router", "repository_tokens"]

one_identity(__name__)
