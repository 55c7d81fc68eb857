"""Long-polls that cost one look at the broker per queue, however many pilots wait on it.

A thousand idle pilots long-polling one task would otherwise each look at the queue every few
hundredths of a second. Here the long-polls of a queue wait on one ``asyncio.Event``; one
watcher per queue (alive while anyone waits) asks the broker how many points are ready every
``WATCH_EVERY`` seconds and wakes as many waiters as there are points ready, first come first
served; a woken one that got none (another pilot was faster) waits again.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from gridhpo.errors import GridHPOError
from gridhpo.gateway.leases import Gateway

log = logging.getLogger(__name__)

WATCH_EVERY = 0.02  # seconds between the watcher's looks at a queue someone waits on


@dataclass
class _Queue:
    # first come, first served; removing one that timed out costs O(1), where a deque's remove
    # scanned all: thousands of idle long-polls time out every few seconds
    waiters: OrderedDict[asyncio.Future[bool], None] = field(default_factory=OrderedDict)
    watcher: asyncio.Task[None] | None = None


class Waiting:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._queues: dict[str, _Queue] = {}

    async def wait(self, queue: str, timeout: float) -> bool:
        """Until points are ready in ``queue`` for this waiter (True), or ``timeout`` seconds (False).
        Waiters are woken first come, first served, as many as there are points ready."""
        q = self._queues.get(queue)
        if q is None:
            q = self._queues[queue] = _Queue()
        loop = asyncio.get_running_loop()
        me: asyncio.Future[bool] = loop.create_future()
        q.waiters[me] = None
        if q.watcher is None or q.watcher.done():
            q.watcher = asyncio.create_task(self._watch(queue, q))
        # a timer rather than asyncio.wait_for, which makes a task per wait: waiting is all a
        # thousand idle pilots do
        timer = loop.call_later(timeout, _settle, me, False)
        try:
            return await me
        finally:
            timer.cancel()
            q.waiters.pop(me, None)

    async def _watch(self, queue: str, q: _Queue) -> None:
        try:
            while q.waiters:
                await asyncio.sleep(WATCH_EVERY)
                if self.gw.seems_empty(queue):
                    continue
                try:
                    ready = await run_in_threadpool(self.gw.broker.size, queue)
                except GridHPOError as exc:  # the broker is away: the waiters time out meanwhile
                    log.warning("watching %s: %s", queue, exc)
                    await asyncio.sleep(1.0)
                    continue
                if ready <= 0:
                    self.gw.found_empty(queue)
                while ready > 0 and q.waiters:
                    w, _ = q.waiters.popitem(last=False)
                    if not w.done():
                        w.set_result(True)
                        ready -= 1
        finally:
            if not q.waiters and self._queues.get(queue) is q:
                del self._queues[queue]


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
