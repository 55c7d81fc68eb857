"""The task file's fields of the ATLAS evaluation contract (docs/atlas.md, "The evaluation contract").

``evaluation.files``, ``evaluation.training_data``, ``evaluation.points_per_job`` and
``evaluation.checkpoint.save``/``load`` are read by the protocol's own ``from_wire`` (one
definition of their types, defaults and checks, which the pilot applies to every point too);
here the task file's rules are added on top: an unknown key of ``files`` is an error naming the
closest one, and every error is one line naming the file.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gridhpo.errors import ConfigError, MessageError, unknown_name
from gridhpo.protocol.evaluation import FilesSpec


def contract_fields(cls: type[Any], raw: Mapping[str, Any], where: str, source: str,
                    keys: tuple[str, ...]) -> dict[str, Any]:
    """The values of ``keys`` of section ``raw`` (the task file's ``where``), read as the
    protocol's ``cls.from_wire`` reads them; keys left out take their defaults."""
    files = raw.get("files") if "files" in keys else None
    if isinstance(files, Mapping):
        known = {f.name for f in dataclasses.fields(FilesSpec)}
        for key in files:
            if key not in known:
                raise ConfigError(f"{source}: {where}.files: {unknown_name('key', str(key), known)}")
    wire = {k: raw[k] for k in keys if raw.get(k) is not None}
    try:
        parsed = cls.from_wire(wire, where)
    except MessageError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return {k: getattr(parsed, k) for k in keys}
