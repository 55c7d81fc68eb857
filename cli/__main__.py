from __future__ import annotations

from gridhpo.cli.main import main

main()
