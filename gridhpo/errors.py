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


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """The loud registry error, with close matches, as kombu gives for a transport typo."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})"
    )
