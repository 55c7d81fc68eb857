from __future__ import annotations

from gridhpo.gateway.app import main

main()
