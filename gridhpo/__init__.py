"""gridhpo: hyperparameter optimisation across computing sites."""
from __future__ import annotations

from gridhpo.errors import GridHPOError

__version__ = "0.1.0"
__all__ = ["GridHPOError", "__version__"]
