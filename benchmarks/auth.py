"""What authenticating messages costs per message (protocol/auth.py): an event's code made by
the pilot's broker and proven by the steering (among 1 or 5 tokens: a task's current one and
those replaced while the steering runs), a point signed by the steering and verified by the
pilot's gate: alone (a batch of one) and in a batch of 64 signed at once (one signature over a
Merkle tree, checked once per batch by the pilot), verified from the wire text or from a body
re-serialised on the way.

    .venv/bin/python benchmarks/auth.py [--messages 5000] [--batch 64]

Prints one table: CPU microseconds per message of this process (so that other work on the
machine does not count), and messages per second of CPU, for each operation;
``point: signed`` and ``point: verified`` are a point alone (a batch of one).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from gridhpo.protocol import Event, PointMessage  # noqa: E402
from gridhpo.protocol.auth import Gate, Signer, mac_text, proven_token  # noqa: E402
from gridhpo.protocol.evaluation import EvaluationSpec, PointObjective  # noqa: E402
from gridhpo.tokens import new_token  # noqa: E402


def per_message(n: int, op: Callable[[], object]) -> float:
    start = time.process_time()
    for _ in range(n):
        op()
    return (time.process_time() - start) / n * 1e6


def each(items: list[Any], op: Callable[[Any], object]) -> float:
    start = time.process_time()
    for item in items:
        op(item)
    return (time.process_time() - start) / len(items) * 1e6


def point(n: int) -> dict[str, Any]:
    return PointMessage(task_id=3, task_name="t", point_id=n, number=n, attempt=1, params={"x": 0.5, "y": 3},
                        evaluation=EvaluationSpec.from_wire({"command": "python train.py"}),
                        objective=PointObjective.from_wire({"metric": "loss"})).to_json()


def signing_rows(n: int, size: int) -> list[tuple[str, float]]:
    signer = Signer(Ed25519PrivateKey.generate())
    points = [point(i) for i in range(n)]
    batches = [points[i:i + size] for i in range(0, n, size)]
    alone = [signer.seal([p])[0] for p in points]  # each its own signature: no root cached
    together = [t for b in batches for t in signer.seal(b)]
    gate = Gate()
    gate.trust(signer.public, 3)

    def verify(raw: bytes) -> object:  # as the pilot's broker does: decoded, with its text
        return gate.incoming(json.loads(raw), raw)

    return [
        ("point: signed (steering)", each(points, lambda p: signer.seal([p]))),
        (f"point: signed in a batch of {size}", each(batches, signer.seal) / size),
        ("point: verified (pilot's gate)", each(alone, verify)),
        (f"point: verified in a batch of {size}", each(together, verify)),
        ("point: verified, re-serialised", each(alone, lambda raw: gate.incoming(json.loads(raw)))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    n = args.messages
    token, old = new_token(), [new_token() for _ in range(4)]
    event = Event(type="metric", task_id=3, point_id=5, attempt=1, pilot_id="p", auth=token,
                  data={"seq": 1, "step": 2, "values": {"loss": 0.25, "acc": 0.9}}).to_json()
    raw = mac_text(event)
    sent = json.loads(raw)
    rows = [
        ("event: code made (pilot's broker)", per_message(n, lambda: mac_text(event))),
        ("event: proven, 1 token", per_message(n, lambda: proven_token(sent, [token], raw))),
        ("event: proven, last of 5 tokens", per_message(n, lambda: proven_token(sent, [*old, token], raw))),
        ("event: proven, re-serialised", per_message(n, lambda: proven_token(sent, [token]))),
        *signing_rows(n, args.batch),
    ]
    print(f"{'operation':<40} {'us/message':>10} {'messages/s':>10}")
    for name, us in rows:
        print(f"{name:<40} {us:>10.1f} {1e6 / us:>10.0f}")


if __name__ == "__main__":
    main()
