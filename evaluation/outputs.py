"""What an evaluation writes that the pilot reads: metrics.jsonl while it runs, output.json at the end.

An evaluation is untrusted input to its pilot: both files are read only as regular files of
the work directory (never through a symbolic link, never a FIFO or device, never a file with
other hard links), within size limits, and parsed with a bounded nesting depth. What the pilot
sends on is bounded too, so one event always fits in a broker message
(``protocol.messages.MAX_MESSAGE_BYTES``): oversized fields are truncated with a note.
"""
from __future__ import annotations

import errno
import json
import logging
import math
import numbers
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridhpo.errors import GridHPOError
from gridhpo.protocol.events import FinishedData, MetricData
from gridhpo.protocol.messages import json_depth

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 16 << 20  # output.json (its fields are then cut to fit one message)
MAX_METRICS_LINE_BYTES = 64 << 10  # one line of metrics.jsonl; longer lines are skipped
MAX_METRICS_READ_BYTES = 1 << 20  # metrics.jsonl read per pilot loop iteration (bounded work)
METRIC_EVENTS_PER_SECOND = 20.0  # metric lines forwarded per second, on average...
METRIC_EVENTS_BURST = 100  # ...and at once; beyond, a flood is thinned (evenly, the latest line kept)
MAX_DEPTH = 32  # nesting of objects and arrays in output.json and in a metrics line
MAX_MESSAGE_CHARS = 16 << 10  # the result's message (and a failure's reason)
MAX_FIELD_BYTES = 64 << 10  # one extra result value or metric value, as JSON
MAX_EXTRA_BYTES = 512 << 10  # all extra result values together, as JSON
MAX_KEY_CHARS = 256  # a key of output.json or of a metrics line
MAX_NOTES = 50  # notes on what was cut from one output or metrics line...
MAX_NOTE_CHARS = 300  # ...each at most this long
_INT64 = 1 << 63


class OutputError(GridHPOError):
    """output.json or metrics.jsonl that the pilot refuses to read; the point fails with this."""


def read_regular(workdir: Path, name: str, limit: int, offset: int = 0) -> bytes | None:
    """Up to ``limit`` bytes from ``offset`` of ``workdir/name``; None if it does not exist.

    Opened with O_NOFOLLOW (a symlink, even to a file inside the work directory, is refused)
    and O_NONBLOCK (opening a FIFO never waits for a writer), then checked with fstat to be a
    regular file with a single link, inside the work directory. Reading a file larger than
    ``limit`` from ``offset`` returns ``limit`` bytes; the caller decides what that means."""
    path = workdir / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(f"{name} is a symbolic link (to {_target(path)}); the pilot reads only "
                              "regular files of the work directory") from None
        raise OutputError(f"{name} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{name} is not a regular file ({_kind(st.st_mode)}); the pilot reads only "
                              "regular files of the work directory")
        if st.st_nlink != 1:
            raise OutputError(f"{name} has {st.st_nlink} hard links; the pilot reads only files of the work "
                              "directory that have no other name")
        # the work directory itself may have been swapped for a link: the file must still be in it
        if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(workdir)):
            raise OutputError(f"{name} resolves outside the work directory")
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _target(path: Path) -> str:
    try:
        return repr(os.readlink(path))[:200]
    except OSError:
        return "?"


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a file"


def parse_json(text: bytes | str, what: str) -> Any:
    """JSON with at most MAX_DEPTH levels of nesting, or OutputError with the reason."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise OutputError(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, and integers beyond Python's digit limit
        raise OutputError(f"{what} is not valid JSON: {str(exc)[:200]}") from None
    if json_depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise OutputError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    return value


def read_output(workdir: Path, name: str = "output.json") -> dict[str, Any] | None:
    """The output file (``evaluation.files.output``) as a JSON object; None if there is none;
    OutputError if it cannot be used."""
    raw = read_regular(workdir, name, MAX_OUTPUT_BYTES + 1)
    if raw is None:
        return None
    if len(raw) > MAX_OUTPUT_BYTES:
        raise OutputError(f"{name} is larger than {MAX_OUTPUT_BYTES} bytes")
    out = parse_json(raw, name)
    if not isinstance(out, dict):
        raise OutputError(f"{name} is not a JSON object")
    return out


class MetricsTail:
    """Complete lines appended to metrics.jsonl since the last read, with their index; at most
    MAX_METRICS_READ_BYTES per read, so a flood is forwarded over several loop iterations."""

    def __init__(self, workdir: Path, name: str = "metrics.jsonl") -> None:
        self.workdir = workdir
        self.name = name
        self.offset = 0
        self.seq = 0
        self.skipping = False  # inside a line longer than MAX_METRICS_LINE_BYTES
        self.skipped = 0  # lines skipped for their length
        self.more = False  # the last read stopped at its limit: there is more to read now
        self.rate = Rate()

    def take(self) -> tuple[list[tuple[int, str]], int]:
        """The lines of the next read to forward, and how many lines it read. Thinned to the
        rate (METRIC_EVENTS_PER_SECOND, bursts of METRIC_EVENTS_BURST): an evaluation writing
        faster than events can go (a message each) still has its latest value and the shape
        of its curve reported, neither the pilot nor the steering gets a backlog, and the
        latest line of every read always goes."""
        lines = self.read_new()
        if not lines:
            return [], 0
        return thin(lines, self.rate.allow(len(lines))), len(lines)

    def read_new(self) -> list[tuple[int, str]]:
        """The next complete lines; raises OutputError if metrics.jsonl is not a regular file."""
        chunk = read_regular(self.workdir, self.name, MAX_METRICS_READ_BYTES, self.offset)
        self.more = chunk is not None and len(chunk) == MAX_METRICS_READ_BYTES
        if not chunk:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) < MAX_METRICS_LINE_BYTES:
                return []  # a line still being written
            # a line longer than the limit: skip it up to its end, wherever that is
            if not self.skipping:
                self.skipped += 1
            self.skipping = True
            self.offset += len(chunk)
            return []
        self.offset += end + 1
        out = []
        lines = chunk[: end + 1].split(b"\n")
        if self.skipping:
            lines = lines[1:]  # the rest of the overlong line
            self.skipping = False
        for raw in lines:
            if len(raw) > MAX_METRICS_LINE_BYTES:
                self.skipped += 1
                continue
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                out.append((self.seq, line))
                self.seq += 1
        return out


class Rate:
    """A token bucket: ``allow(n)`` of ``n`` wanted now, at ``per_second`` on average and at
    most ``burst`` at once."""

    def __init__(self, per_second: float = METRIC_EVENTS_PER_SECOND, burst: int = METRIC_EVENTS_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.at = clock()

    def allow(self, n: int) -> int:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.per_second)
        self.at = now
        k = min(n, int(self.tokens))
        self.tokens -= k
        return k


def thin(lines: list[tuple[int, str]], most: int) -> list[tuple[int, str]]:
    """At most ``most`` (at least 1) of ``lines``, evenly spaced, the last always among them."""
    most = max(1, most)
    if len(lines) <= most:
        return lines
    step = len(lines) / most
    return [lines[len(lines) - 1 - int(i * step)] for i in reversed(range(most))]


def finite(value: Any) -> bool:
    """A number the result can carry (an integer too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def truncate(text: str, limit: int, what: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f" [gridhpo: {what} truncated from {len(text)} to {limit} characters]"


class Notes(list[str]):
    """What ``bounded`` cut: the first MAX_NOTES notes, each at most MAX_NOTE_CHARS (an
    output.json of 8 MB made of long keys in long paths once kept notes of 700 MB)."""

    def append(self, note: str) -> None:
        if len(self) < MAX_NOTES:
            super().append(note if len(note) <= MAX_NOTE_CHARS else note[:MAX_NOTE_CHARS] + "...")
        elif len(self) == MAX_NOTES:
            super().append("further notes left out")


def bounded(value: Any, notes: list[str], where: str, depth: int = 0) -> Any:
    """``value`` as an event can carry it: integers beyond 64 bits as floats (or null), long
    keys cut, values over MAX_FIELD_BYTES or nested deeper than MAX_DEPTH dropped (null), each
    with a note. (An in-process objective's result has not been through ``parse_json``.)"""
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        notes.append(f"{where}: nested more than {MAX_DEPTH} levels deep: dropped")
        return None
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return value
        try:
            return float(value)
        except OverflowError:
            notes.append(f"{where}: a {value.bit_length()}-bit integer, replaced by null")
            return None
    if isinstance(value, str):
        if len(value) > MAX_FIELD_BYTES:
            notes.append(f"{where}: truncated from {len(value)} characters to {MAX_FIELD_BYTES}")
            return value[:MAX_FIELD_BYTES]
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            k = str(k)
            key = k if len(k) <= MAX_KEY_CHARS else k[:MAX_KEY_CHARS] + "..."
            if key != k:
                notes.append(f"{where}: a key of {len(k)} characters cut to {MAX_KEY_CHARS}")
            out[key] = bounded(v, notes, f"{where}.{key}", depth + 1)
        return _within(out, notes, where)
    if isinstance(value, (list, tuple)):
        return _within([bounded(v, notes, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)], notes, where)
    # an in-process objective may return anything: numbers as numbers, the rest as text
    if isinstance(value, numbers.Integral):
        return bounded(int(value), notes, where, depth)
    if isinstance(value, numbers.Real):
        return float(value)
    notes.append(f"{where}: a {type(value).__name__}, not JSON: kept as text")
    return bounded(str(value), notes, where, depth)


def _within(value: Any, notes: list[str], where: str) -> Any:
    size = len(json.dumps(value))
    if size <= MAX_FIELD_BYTES:
        return value
    notes.append(f"{where}: {size} bytes of JSON, over the {MAX_FIELD_BYTES}-byte limit: dropped")
    return None


def bounded_extra(extra: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A result's extra values: each bounded, and all of them within MAX_EXTRA_BYTES (keys in
    order until the budget is spent); with notes on what was cut."""
    notes = Notes()
    out: dict[str, Any] = {}
    used = 0
    for k, v in extra.items():
        k = str(k)
        key = k if len(k) <= MAX_KEY_CHARS else k[:MAX_KEY_CHARS] + "..."
        if key != k:
            notes.append(f"a key of {len(k)} characters cut to {MAX_KEY_CHARS}")
        value = bounded(v, notes, key, 1)
        size = len(json.dumps({key: value}))
        if used + size > MAX_EXTRA_BYTES:
            notes.append(f"{len(extra) - len(out)} values from {key!r} on dropped: over {MAX_EXTRA_BYTES} bytes "
                         "of extra values")
            break
        out[key] = value
        used += size
    return out, notes



def metric_data(seq: int, line: str, who: str) -> MetricData | None:
    """The data of the metric event for line ``seq`` of metrics.jsonl; None for a line that is
    not a JSON object within the limits (skipped, with a warning naming ``who``)."""
    try:
        values = parse_json(line, f"metrics.jsonl line {seq + 1}")
        if not isinstance(values, dict):
            raise OutputError(f"metrics.jsonl line {seq + 1} is not a JSON object")
    except OutputError as exc:
        log.warning("%s: line ignored: %s: %.200s", who, exc, line)
        return None
    notes = Notes()
    values = bounded(values, notes, "values")
    if notes:
        log.warning("%s: metrics.jsonl line %d: %s", who, seq + 1, "; ".join(notes)[:1000])
    if not isinstance(values, dict):
        return None
    step = values.get("step")  # the evaluation's own line, not protocol data
    return MetricData(seq=seq, values=values, step=step if finite(step) else None)


def result_data(out: dict[str, Any], metric: str, source: str) -> tuple[FinishedData | None, str]:
    """(the data of the ``finished`` event, "") for a usable result, else (None, the reason the
    point failed). Every field is bounded so that the event fits in one message; what was cut
    is noted at the end of the message."""
    status = out.get("status", 0)
    message = truncate(str(out.get("message") or ""), MAX_MESSAGE_CHARS, "message")
    if status != 0:
        return None, f"{source} status {truncate(repr(status), 200, 'status')}: {message or 'no message'}"
    value = out.get(metric)
    if not finite(value):
        if value is None:
            what = "is missing"
        elif isinstance(value, int) and not isinstance(value, bool):
            what = f"is a {value.bit_length()}-bit integer, beyond a float"
        else:
            what = f"is {truncate(repr(value), 200, 'value')}, not a finite number"
        return None, f"{source}: objective metric {metric!r} {what}"
    extra, notes = bounded_extra({k: v for k, v in out.items() if k not in ("status", "message", metric)})
    if notes:
        log.warning("%s: result cut to fit a message: %s", source, "; ".join(notes)[:1000])
        message = (message + " " if message else "") + truncate(f"[gridhpo: {'; '.join(notes)}]", 4000, "note")
    assert isinstance(value, (int, float))
    return FinishedData(value=float(value), message=message, metrics=extra), ""
