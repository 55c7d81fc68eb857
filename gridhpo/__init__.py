"""gridhpo: hyperparameter optimisation across computing sites."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gridhpo.errors import GridHPOError

if TYPE_CHECKING:
    from gridhpo.client import Client

__version__ = "0.1.0"
__all__ = ["Client", "GridHPOError", "__version__"]


def __getattr__(name: str) -> Any:
    # the ask/tell client is imported on first use: `import gridhpo` stays light
    if name == "Client":
        from gridhpo.client import Client

        return Client
    raise AttributeError(f"module 'gridhpo' has no attribute {name!r}")
