"""kombu's filesystem transport, made safe for several processes.

kombu's own ``_put`` creates the message file and then writes into it, so a reader listing
the folder in between claims an empty file; and its ``_get`` moves a claimed file to the
system temporary folder, which is a copy (not atomic) when that is another file system. Here a
message is written under a hidden name and renamed into place, and a reader claims it by a
rename inside the same file system, which only one reader can win.

Whoever can write the folder can put anything there, so what a reader claims is checked
before kombu sees it: a file that is not a message envelope of ours (not JSON, too large,
not a regular file, a compressed or undecodable body) is handed over as an "unreadable"
message carrying the reason, which the consumer sets aside in the dead-letter queue, instead
of an exception inside ``drain_events`` that would stop the consumer at every restart.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import stat
import uuid
from queue import Empty
from time import time_ns
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from gridhpo.protocol.messages import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

# set on what a reader could not read as a message; the consumer dead-letters it with the reason
UNREADABLE_HEADER = "x-gridhpo-unreadable"
# a base64 body is 4/3 of the message; the envelope around it is small
MAX_FILE_BYTES = 2 * MAX_MESSAGE_BYTES


class _Unreadable(Exception):
    """A claimed file that is not a message of ours."""


def _read(path: str) -> bytes:
    """At most ``MAX_FILE_BYTES + 1`` bytes of a regular file, never following a link nor
    waiting on a pipe someone put in the folder."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise _Unreadable(f"cannot open the message file: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Unreadable("the message file is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _Unreadable(f"cannot read the message file: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, onerror=lambda _f, p, exc: log.warning("cannot remove %s: %s", p, exc[1]))


def _checked(payload: bytes) -> dict[str, Any]:
    """The message envelope in ``payload``, in the shape kombu's virtual channel builds a
    message from (anything else would raise inside it)."""
    if len(payload) > MAX_FILE_BYTES:
        raise _Unreadable(f"a message file over {MAX_FILE_BYTES} bytes")
    try:
        env = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise _Unreadable(f"the message file is not JSON: {type(exc).__name__}") from exc
    if not isinstance(env, dict) or not isinstance(env.get("properties"), dict):
        raise _Unreadable("the message file is not a message envelope")
    headers = env.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise _Unreadable("the message's headers are not an object")
    if headers and "compression" in headers:
        raise _Unreadable("compressed messages are not accepted")  # kombu would inflate it unbounded
    for key in ("content-type", "content-encoding"):
        if not isinstance(env.get(key), (str, type(None))):
            raise _Unreadable(f"the message's {key} is not text")
    body, encoding = env.get("body"), env["properties"].get("body_encoding")
    if not isinstance(body, (str, type(None))):
        raise _Unreadable("the message's body is not text")
    if encoding == "base64" and body:
        try:
            base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise _Unreadable("the message's body is not valid base64") from exc
    elif encoding not in (None, "utf-8"):
        raise _Unreadable(f"body encoding {str(encoding)[:40]!r} is not accepted")
    return env


def _unreadable(payload: bytes, reason: str) -> dict[str, Any]:
    return {"body": base64.b64encode(payload[:1024]).decode(), "content-type": "application/octet-stream",
            "content-encoding": "binary", "headers": {UNREADABLE_HEADER: reason},
            "properties": {"body_encoding": "base64", "priority": 0}}


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        # time_ns keeps files in publish order across processes; the uuid breaks ties
        name = f"{time_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        tmp = os.path.join(self.data_folder_out, f".tmp-{name}")
        with open(tmp, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.data_folder_out, name))

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        suffix = f".{queue}.msg"
        for filename in sorted(n for n in os.listdir(self.data_folder_in) if n.endswith(suffix)):
            if filename.partition(".")[2] != suffix[1:]:
                continue  # a queue whose name ends with ours
            claimed = os.path.join(self.processed_folder, filename)
            try:
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except FileNotFoundError:
                continue  # another consumer won it
            payload = b""
            try:
                payload = _read(claimed)
                env = _checked(payload)
            except _Unreadable as exc:
                env = _unreadable(payload, f"{exc} ({filename[:120]})")
            try:
                os.remove(claimed)
            except IsADirectoryError:
                _remove_tree(claimed)
            except OSError as exc:
                log.warning("cannot remove the claimed message file %s: %s", claimed, exc)
            # our own tag and routing: kombu keys its unacknowledged messages by the tag, and
            # gives an unacknowledged message back to the queue named here
            env["properties"]["delivery_tag"] = self._next_delivery_tag()
            env["properties"]["delivery_info"] = {"exchange": "", "routing_key": queue}
            return env
        raise Empty()

    def _size(self, queue: str) -> int:
        suffix = f".{queue}.msg"
        return sum(
            1 for n in os.listdir(self.data_folder_in)
            if n.endswith(suffix) and n.partition(".")[2] == suffix[1:]
        )

    def _purge(self, queue: str) -> int:
        count = 0
        suffix = f".{queue}.msg"
        for n in os.listdir(self.data_folder_in):
            if n.endswith(suffix) and n.partition(".")[2] == suffix[1:]:
                try:
                    os.remove(os.path.join(self.data_folder_in, n))
                    count += 1
                except FileNotFoundError:
                    pass  # consumed meanwhile
        return count


class Transport(filesystem.Transport):
    Channel = Channel
    driver_name = "gridhpo-filesystem"
