"""kombu's filesystem transport, made safe for several processes.

kombu's own ``_put`` creates the message file and then writes into it, so a reader listing
the folder in between claims an empty file; and its ``_get`` moves a claimed file to the
system temporary folder, which is a copy (not atomic) when that is another file system. Here a
message is written under a hidden name and renamed into place, and a reader claims it by a
rename inside the same file system, which only one reader can win.
"""
from __future__ import annotations

import os
import uuid
from queue import Empty
from time import time_ns
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads


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
            with open(claimed, "rb") as f:
                payload = f.read()
            os.remove(claimed)
            return loads(bytes_to_str(payload))
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
