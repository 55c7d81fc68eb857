"""The queue contract (gridhpo.protocol.Broker over a transport) as a pytest suite."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from gridhpo.protocol import Broker

CONSUMER = """
import sys, time
from gridhpo.protocol import Broker
from gridhpo.protocol.broker import Delivery, fair_shares
b = Broker(sys.argv[1])
d = b.wait("k", timeout=10)
print("got", d.body["i"], flush=True)
time.sleep(60)
"""


class QueueContract:
    """Subclass under a Test name with a ``url`` fixture: the broker URL of empty queues."""

    def test_messages_arrive_once_in_order(self, url: str) -> None:
        with Broker(url) as pub, Broker(url) as sub:
            pub.publish_many([("q1", {"n": i}) for i in range(20)])
            got = []
            while (d := sub.wait("q1", timeout=2.0)) is not None:
                got.append(d.body["n"])
                d.ack()
                if len(got) == 20:
                    break
            assert got == list(range(20))
            assert sub.get("q1") is None

    def test_queues_are_separate(self, url: str) -> None:
        with Broker(url) as b:
            b.publish("a", {"q": "a"})
            b.publish("a.b", {"q": "a.b"})
            d = b.wait("a.b", timeout=2)
            assert d is not None and d.body == {"q": "a.b"}
            d.ack()
            d = b.wait("a", timeout=2)
            assert d is not None and d.body == {"q": "a"}
            d.ack()

    def test_drain_takes_a_batch_and_waits_at_most_its_timeout(self, url: str) -> None:
        with Broker(url) as pub, Broker(url) as sub:
            t0 = time.monotonic()
            assert sub.drain("ev", max_messages=10, timeout=0.3) == []
            assert time.monotonic() - t0 < 3.0
            pub.publish_many([("ev", {"i": i}) for i in range(25)])
            got: list[int] = []
            deadline = time.monotonic() + 10
            while len(got) < 25 and time.monotonic() < deadline:
                batch = sub.drain("ev", max_messages=10, timeout=0.5)
                assert len(batch) <= 10
                for d in batch:
                    got.append(d.body["i"])
                    d.ack()
            assert sorted(got) == list(range(25))

    def test_a_flooded_queue_does_not_delay_a_quiet_one(self, url: str) -> None:
        """What the steering relies on to serve a small task beside a large one: each drain
        shares its batch among the queues, so the quiet queue's messages come in the first
        rounds, not after the flood."""
        with Broker(url) as pub, Broker(url) as sub:
            pub.publish_many([("big", {"i": i}) for i in range(80)])
            pub.publish_many([("small", {"i": i}) for i in range(3)])
            deadline = time.monotonic() + 10
            while (sub.size("big"), sub.size("small")) != (80, 3) and time.monotonic() < deadline:
                time.sleep(0.05)
            got: dict[str, int] = {"big": 0, "small": 0}
            saw_backlog = False
            while got["small"] < 3 and time.monotonic() < deadline:
                batch, more = sub.drain_fair(["big", "small"], max_messages=20, timeout=0.5)
                assert len(batch) <= 20
                saw_backlog |= "big" in more
                for d in batch:
                    got[d.queue] += 1
                    d.ack()
            assert got["small"] == 3
            assert got["big"] <= 40, f"the quiet queue waited behind {got['big']} messages of the flooded one"
            assert saw_backlog or got["big"] < 20

    def test_a_drain_holds_no_more_than_it_takes(self, url: str) -> None:
        """A pilot drains only as many points as it runs; the rest stay for the other pilots."""
        with Broker(url) as pub, Broker(url) as sub, Broker(url) as other:
            pub.publish_many([("work", {"i": i}) for i in range(6)])
            deadline = time.monotonic() + 10
            mine: list[Any] = []
            while len(mine) < 2 and time.monotonic() < deadline:
                mine += sub.drain("work", max_messages=2, timeout=0.5)
            assert len(mine) == 2  # not acknowledged: still held by this consumer
            theirs: list[int] = []
            while len(theirs) < 4 and time.monotonic() < deadline:
                if (d := other.wait("work", timeout=0.5)) is not None:
                    theirs.append(d.body["i"])
                    d.ack()
            assert sorted(theirs + [d.body["i"] for d in mine]) == list(range(6))
            for d in mine:
                d.ack()

    def test_stop_consuming_gives_back_what_was_not_handed_out(self, url: str) -> None:
        with Broker(url) as pub, Broker(url) as sub, Broker(url) as other:
            pub.publish_many([("held", {"i": i}) for i in range(5)])
            deadline = time.monotonic() + 10
            got: list[int] = []
            while not got and time.monotonic() < deadline:
                # a consumer holding more than it hands out, as the steering's does
                batch, _ = sub.drain_fair(["held"], max_messages=2, timeout=0.5, prefetch=4)
                for d in batch:
                    got.append(d.body["i"])
                    d.ack()
            sub.stop_consuming("held")
            while len(got) < 5 and time.monotonic() < deadline:
                if (late := other.wait("held", timeout=0.5)) is not None:
                    got.append(late.body["i"])
                    late.ack()
            assert sorted(got) == list(range(5))

    def test_size_and_purge(self, url: str) -> None:
        with Broker(url) as b:
            b.publish_many([("s", {"i": i}) for i in range(5)])
            deadline = time.monotonic() + 5
            while b.size("s") != 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert b.size("s") == 5
            assert b.purge("s") == 5
            assert b.size("s") == 0 and b.get("s") is None

    def test_two_consumers_never_get_the_same_message(self, url: str) -> None:
        n = 200
        with Broker(url) as pub:
            pub.publish_many([("c", {"i": i}) for i in range(n)])
        seen: list[list[int]] = [[], []]

        def consume(k: int) -> None:
            with Broker(url) as b:
                while (d := b.wait("c", timeout=1.0)) is not None:
                    seen[k].append(d.body["i"])
                    d.ack()

        threads = [threading.Thread(target=consume, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(seen[0] + seen[1]) == list(range(n))

    def test_a_consumer_killed_holding_a_message(self, url: str) -> None:
        """What the steering must allow for: RabbitMQ redelivers, the folder transport cannot
        (the steering then re-sends the point, see test_steering). ``redelivers`` says which."""
        with Broker(url) as b:
            b.publish("k", {"i": 7})
            proc = subprocess.Popen([sys.executable, "-c", CONSUMER, url], stdout=subprocess.PIPE, text=True,
                                    env=dict(os.environ))
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "got 7"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            d = b.wait("k", timeout=5.0)
            if b.redelivers:
                assert d is not None and d.body == {"i": 7}
                d.ack()
            else:
                assert d is None
