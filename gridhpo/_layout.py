"""One import identity per module (docs/architecture.md, Layout).

The repository's top-level folders are gridhpo's subpackages, reached through the links in
``gridhpo/``. Imported under its bare name (``import steering`` from the repository root), a
folder would be a second copy of every module in it (``steering.service.Steering is not
gridhpo.steering.service.Steering``); each folder's ``__init__`` calls ``one_identity`` to
refuse that.
"""
from __future__ import annotations


def one_identity(name: str) -> None:
    """Raise ImportError unless the package ``name`` is imported as a subpackage of gridhpo."""
    if not name.startswith("gridhpo."):
        raise ImportError(f"import gridhpo.{name}, not {name}: the repository's top-level folders are "
                          "subpackages of gridhpo")
