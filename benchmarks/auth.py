"""What authenticating messages costs per message (protocol/auth.py): an event's code made by
the pilot's broker and proven by the steering (among 1 or 5 tokens: a task's current one and
those replaced while the steering runs), a point signed by the steering and verified by the
pilot's gate.

    .venv/bin/python benchmarks/auth.py [--messages 5000]

Prints one table: microseconds per message for each operation.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from gridhpo.protocol import Event, PointMessage  # noqa: E402
from gridhpo.protocol.auth import Gate, Signer, proven_token, with_mac  # noqa: E402
from gridhpo.protocol.evaluation import EvaluationSpec, PointObjective  # noqa: E402
from gridhpo.tokens import new_token  # noqa: E402


def per_message(n: int, op: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    n = parser.parse_args().messages
    token, old = new_token(), [new_token() for _ in range(4)]
    event = Event(type="metric", task_id=3, point_id=5, attempt=1, pilot_id="p", auth=token,
                  data={"seq": 1, "step": 2, "values": {"loss": 0.25, "acc": 0.9}}).to_json()
    sent = with_mac(event)
    signer = Signer(Ed25519PrivateKey.generate())
    point = PointMessage(task_id=3, task_name="t", point_id=5, number=1, attempt=1, params={"x": 0.5, "y": 3},
                         evaluation=EvaluationSpec.from_wire({"command": "python train.py"}),
                         objective=PointObjective.from_wire({"metric": "loss"})).to_json()
    signed = signer.sign(point)
    gate = Gate()
    gate.trust(signer.public, 3)
    rows = [
        ("event: code made (pilot's broker)", per_message(n, lambda: with_mac(event))),
        ("event: proven, 1 token", per_message(n, lambda: proven_token(sent, [token]))),
        ("event: proven, last of 5 tokens", per_message(n, lambda: proven_token(sent, [*old, token]))),
        ("point: signed (steering)", per_message(n, lambda: signer.sign(point))),
        ("point: verified (pilot's gate)", per_message(n, lambda: gate.incoming(signed))),
    ]
    print(f"{'operation':<36} {'us/message':>10}")
    for name, us in rows:
        print(f"{name:<36} {us:>10.1f}")


if __name__ == "__main__":
    main()
