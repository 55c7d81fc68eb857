"""String name -> class registries (optimisers, schedulers, runtimes), as kombu's transports:
a module is imported only when its name is chosen, and a typo fails loudly with close matches."""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from gridhpo.errors import ConfigError, unknown_name


def load(kind: str, name: str, registry: Mapping[str, str]) -> Any:
    """The object registered as ``name`` (``"package.module:Attribute"``)."""
    if name not in registry:
        raise unknown_name(kind, name, registry)
    module, _, attr = registry[name].partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{kind} {name!r} needs a library that is not installed: {exc}") from exc
    return getattr(mod, attr)
