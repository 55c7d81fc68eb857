"""Many simulated pilots on the gateway at once (``benchmarks/gateway.py``'s load rows).

Each simulated pilot takes one point of a task whose evaluations never end, reports it
started, then sends a heartbeat every 10 s (its first at a random moment of the first 10 s,
so they spread) and long-polls the task's (empty) point queue meanwhile, as a pilot between
points does. One real HTTP pilot runs a trivial task beside them. One steering serves both.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gridhpo.bookkeeping import Repository
from gridhpo.protocol import Broker, Event
from gridhpo.protocol.httptransport import LONG_POLL
from gridhpo.steering.runner import LocalPilots, submit
from gridhpo.steering.service import Steering
from gridhpo.steering.taskfile import parse_task
from tests.gateway_harness import gateway_process

HERE = Path(__file__).resolve().parent
BEAT = 10.0


def _task(points: int, evaluation: dict[str, Any]) -> Any:
    return parse_task({
        "name": f"load-{uuid.uuid4().hex[:6]}",
        "search_space": {"x": {"type": "float", "low": -1, "high": 1}, "y": {"type": "float", "low": -1, "high": 1}},
        "optimiser": {"backend": "random", "seed": 2},
        "budget": {"max_points": points, "parallel": max(8, min(points, 5000)), "min_queued": 64},
        "evaluation": evaluation,
    }, base_dir=HERE)


class _Conn:
    """One kept-alive HTTP/1.1 connection, as minimal as can be: a thousand of them in one
    process must cost the simulating side little (a pooled client scans its pool per request)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        for attempt in (0, 1):
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                assert self.reader is not None
                data = json.dumps(body).encode()
                self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.token}"
                                  f"\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                                  .encode() + data)
                await self.writer.drain()
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                return status, json.loads(await self.reader.readexactly(length))
            except (OSError, asyncio.IncompleteReadError, StopIteration):
                if self.writer is not None:
                    self.writer.close()
                self.reader = self.writer = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


class _Sim:
    def __init__(self, url: str, tid: int, token: str, n: int) -> None:
        self.url, self.tid, self.token, self.n = url, tid, token, n
        parsed = urlparse(url)
        self.host, self.port = str(parsed.hostname), int(parsed.port or 80)
        self.latencies: list[float] = []
        self.errors = 0
        self.measuring = False

    async def _post(self, conn: _Conn, path: str, body: dict[str, Any]) -> Any:
        """The answer of a 200, retried on anything else, as a pilot does."""
        while True:
            try:
                status, answer = await conn.post(path, body)
                if status == 200:
                    return answer
            except (OSError, asyncio.IncompleteReadError, StopIteration, ValueError):
                pass
            self.errors += 1
            await asyncio.sleep(0.5)

    async def pilot(self, i: int, until: float) -> None:
        pid = f"sim-{i}-{uuid.uuid4().hex[:6]}"
        base = f"/api/v1/pilot/tasks/{self.tid}"
        conn, polls = _Conn(self.host, self.port, self.token), _Conn(self.host, self.port, self.token)
        point = None
        request = uuid.uuid4().hex  # retried as a pilot does: the same points again
        while point is None and time.monotonic() < until:
            got = (await self._post(conn, f"{base}/points", {"request_id": request, "wait": LONG_POLL}))["points"]
            point = got[0] if got else None
        if point is None:
            return
        body = point["body"]

        def event(etype: str) -> dict[str, Any]:
            return Event(type=etype, task_id=self.tid, point_id=body["point_id"], attempt=body["attempt"],
                         pilot_id=pid, site="sim", data={"host": "sim"} if etype == "started" else {},
                         auth=self.token).to_json()

        await self._post(conn, f"{base}/events", {"pilot_id": pid, "messages": [event("started")],
                                                  "acks": [point["delivery"]]})
        poller = asyncio.create_task(self._poll(polls, base, until))
        await asyncio.sleep(random.uniform(0, BEAT))
        while time.monotonic() < until:
            t0 = time.monotonic()
            await self._post(conn, f"{base}/events", {"pilot_id": pid, "messages": [event("heartbeat")]})
            if self.measuring:
                self.latencies.append(time.monotonic() - t0)
            await asyncio.sleep(max(0.0, BEAT - (time.monotonic() - t0)))
        await poller

    async def _poll(self, conn: _Conn, base: str, until: float) -> None:
        await asyncio.sleep(random.uniform(0, LONG_POLL))  # pilots do not all start together
        while time.monotonic() < until:
            answer = await self._post(conn, f"{base}/points", {"request_id": uuid.uuid4().hex, "wait": LONG_POLL})
            for p in answer["points"]:  # the task has no point left; if one came, give it back
                await self._post(conn, f"{base}/settle", {"delivery": p["delivery"], "action": "requeue"})

    async def run(self, warmup: float, duration: float) -> None:
        until = time.monotonic() + warmup + duration
        tasks = [asyncio.create_task(self.pilot(i, until)) for i in range(self.n)]
        await asyncio.sleep(warmup)
        self.measuring = True
        await asyncio.gather(*tasks)


def _steer(repo: Repository, mq: str, stop: threading.Event, rounds: list[float]) -> None:
    with Broker(mq, confirm=False) as broker:
        s = Steering(repo, broker)
        s.refresh_tasks(force=True)
        while not stop.is_set():
            t0 = time.monotonic()
            s.step()
            rounds.append(time.monotonic() - t0)
        s.close()


def measure_load(db: str, mq: str, n: int, duration: float) -> dict[str, float]:
    repo = Repository(db)
    held, _ = submit(repo, _task(n, {"command": "sleep 100000", "heartbeat": BEAT, "lost_after": 600}))
    real, _ = submit(repo, _task(10**6, {"python": "_trivial:objective"}))
    stop = threading.Event()
    rounds: list[float] = []
    steering = threading.Thread(target=_steer, args=(repo, mq, stop, rounds), daemon=True)
    steering.start()
    home = Path(os.environ["GRIDHPO_HOME"])  # benchmarks/_setups.py: a fresh one per measurement
    with gateway_process(db, mq, home / f"gateway-load-{uuid.uuid4().hex[:6]}.log") as gw:
        sim = _Sim(gw.url, held, str(repo.task(held).token), n)
        pilot = LocalPilots(real, 1, mq, home / "logs", ["--server", gw.url], repo.task(real).token)
        pilot.start()
        warmup = 30.0
        try:
            t_start = time.time() + warmup
            rounds_from = 0

            def mark() -> None:
                nonlocal rounds_from
                time.sleep(warmup)
                rounds_from = len(rounds)

            marker = threading.Thread(target=mark, daemon=True)
            marker.start()
            asyncio.run(sim.run(warmup, duration))
            t_end = time.time()
            marker.join()
        finally:
            pilot.stop()
            stop.set()
            steering.join(30)
    done = [p for p in repo.points(real) if p.ended_at is not None and t_start <= p.ended_at <= t_end]
    lat = sorted(sim.latencies) or [float("nan")]
    window = sorted(rounds[rounds_from:]) or [float("nan")]
    repo.close()
    return {"pilots": n, "beats_per_s": len(sim.latencies) / duration, "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000, "round_ms": window[len(window) // 2] * 1000,
            "real_rate": len(done) / (t_end - t_start), "errors": sim.errors}
