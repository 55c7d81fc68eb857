"""The exception hierarchy: one root, one subclass per kind of failure a user can act on."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class GridHPOError(Exception):
    """Root of every error gridhpo raises on purpose."""


class ConfigError(GridHPOError):
    """Bad user input: a task file, a search space, a URL or a command-line value."""


class UnknownNameError(ConfigError):
    """A registry lookup with a name that is not registered."""


class BookkeepingError(GridHPOError):
    """The bookkeeping database failed or refused an operation."""


class NotFoundError(BookkeepingError):
    """A task, point or pilot that does not exist."""


class QueueError(GridHPOError):
    """The message broker failed (connection, publish, consume)."""


class MessageError(QueueError):
    """A message that is not valid for the wire protocol."""


class EvaluationError(GridHPOError):
    """An evaluation could not be run (runtime unusable, image missing...)."""


class OptimiserError(GridHPOError):
    """An optimiser backend failed or cannot express the search space."""


class CheckpointError(GridHPOError):
    """An object store or a checkpoint archive failed or was refused."""


#: names listed in full; a longer registry (nevergrad has hundreds) is summed up
MAX_LISTED = 12


def unknown_name(kind: str, name: str, known: Iterable[str], full_list: str | None = None) -> UnknownNameError:
    """The loud registry error, with close matches, as kombu gives for a transport typo.
    The line stays short: beyond ``MAX_LISTED`` names only the count (and ``full_list``, where
    to find them all) is given. Matches ignore case (``cma`` finds ``CMA``)."""
    known = sorted(known)
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(k.lower(), k)
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    if len(known) <= MAX_LISTED:
        listing = f"known: {', '.join(known)}"
    elif full_list:
        listing = f"{len(known)} known, all in {full_list}"
    else:
        listing = f"{len(known)} known: {', '.join(known[:MAX_LISTED])}…"
    return UnknownNameError(f"unknown {kind} {name!r}{hint} ({listing})")
