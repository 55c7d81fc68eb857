"""Manifest entries: their object names, their fields, their signature, and a total parser.

An entry read from the store may have been planted: ``parse_entry`` accepts only the exact
shape ``Manifest.save`` writes and raises ``RefusedCheckpointError`` for anything else (wrong
JSON, wrong types, negative sizes, a sequence other than its name's, nesting deep enough to
exhaust the parser...), so that one bad entry is skipped and never stops a pilot.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from gridhpo.checkpoints._base import RefusedCheckpointError

# <sequence>-a<attempt>.json / .tar: sequences have exactly 8 digits, so the last one is
# 99999999 and nothing ever wraps to a 9-digit name that the pattern would not list
NAME = re.compile(r"(\d{8})-a(\d{1,9})\.(json|tar)")
MAX_SEQUENCE = 99_999_999
MAX_ENTRY_BYTES = 64 << 10  # an entry is ~300 bytes; a larger object is not one
_HEX64 = re.compile(r"[0-9a-f]{64}")
_INTS = ("task", "point", "attempt", "sequence", "size")
_MAX_INT = 1 << 63


@dataclass(frozen=True)
class Entry:
    task: int
    point: int
    attempt: int
    sequence: int
    size: int
    sha256: str
    time: float
    key: str
    signature: str | None = None

    def payload(self) -> bytes:
        fields = asdict(self)
        fields.pop("signature")
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def event_data(self) -> dict[str, Any]:
        """What a ``checkpoint`` event reports about it."""
        return {"key": self.key, "size": self.size, "sha256": self.sha256, "sequence": self.sequence,
                "attempt": self.attempt, "time": self.time}


def sign(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def name_of(prefix: str, key: str) -> tuple[int, int, str] | None:
    """(sequence, attempt, "json" or "tar") of a checkpoint object directly under ``prefix``."""
    if not key.startswith(prefix):
        return None
    m = NAME.fullmatch(key[len(prefix):])
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else None


def _malformed(key: str, why: str) -> RefusedCheckpointError:
    return RefusedCheckpointError(f"manifest entry {key} is malformed: {why}")


def parse_entry(key: str, data: bytes, sequence: int, attempt: int) -> Entry:
    """The entry stored under ``key`` (named ``sequence``-a``attempt``), checked field by field."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _malformed(key, f"not JSON ({type(exc).__name__})") from exc
    if not isinstance(raw, dict):
        raise _malformed(key, f"a JSON {type(raw).__name__}, not an object")
    for field in (*_INTS, "sha256", "time", "key"):
        if field not in raw:
            raise _malformed(key, f"no field {field!r}")
    for field in _INTS:
        value = raw[field]
        # bounded: an integer of 400 digits overflows every float it meets (sizes, times)
        if type(value) is not int or not 0 <= value < _MAX_INT:
            raise _malformed(key, f"{field} must be a non-negative integer below 2**63, not {str(value)[:40]}")
    if not isinstance(raw["sha256"], str) or not _HEX64.fullmatch(raw["sha256"]):
        raise _malformed(key, "sha256 must be 64 lowercase hexadecimal digits")
    t = raw["time"]
    if not ((type(t) is float and math.isfinite(t)) or (type(t) is int and abs(t) < _MAX_INT)):
        raise _malformed(key, "time must be a finite number of seconds, below 2**63")
    if not isinstance(raw["key"], str):
        raise _malformed(key, "key must be a string")
    signature = raw.get("signature")  # optional by design: unsigned entries omit it
    if signature is not None and (not isinstance(signature, str) or not _HEX64.fullmatch(signature)):
        raise _malformed(key, "signature must be 64 lowercase hexadecimal digits")
    if (raw["sequence"], raw["attempt"]) != (sequence, attempt):
        raise _malformed(key, f"sequence {raw['sequence']} attempt {raw['attempt']} differ from its name's")
    return Entry(raw["task"], raw["point"], raw["attempt"], raw["sequence"], raw["size"], raw["sha256"],
                 raw["time"], raw["key"], signature)
