"""The long-poll waiters of one queue (gateway/waiting.py): woken first come, first served, as
many as there are points ready; one that timed out is gone at once and never woken."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("starlette")
from gridhpo.gateway.waiting import Waiting


class _Queue:
    """What Waiting asks of the gateway: how many points a queue holds, whether it was just empty."""

    def __init__(self) -> None:
        self.ready = 0
        self.broker = self

    def size(self, _queue: str) -> int:
        ready, self.ready = self.ready, 0  # the woken take them: no point is counted twice
        return ready

    def seems_empty(self, _queue: str) -> bool:
        return False

    def found_empty(self, _queue: str) -> None:
        pass


def test_waiters_are_woken_in_order_as_many_as_points_and_a_timed_out_one_is_forgotten() -> None:
    async def scenario() -> list[Any]:
        q = _Queue()
        waiting = Waiting(q)  # type: ignore[arg-type]
        early = asyncio.create_task(waiting.wait("p", 0.05))  # gives up before any point comes
        await asyncio.sleep(0.01)
        first, second, third = (asyncio.create_task(waiting.wait("p", 5.0)) for _ in range(3))
        assert await early is False
        assert len(waiting._queues["p"].waiters) == 3  # the timed-out one left no trace
        q.ready = 2
        woken = await asyncio.gather(first, second)
        third.cancel()
        return [*woken, await asyncio.gather(third, return_exceptions=True)]

    first, second, third = asyncio.run(scenario())
    assert (first, second) == (True, True)
    assert isinstance(third[0], asyncio.CancelledError)  # the third was never woken: 2 points, 2 waiters
