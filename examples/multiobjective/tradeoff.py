"""A toy model-size trade-off for multi-objective search: a larger network is more accurate,
but slower and heavier. Evaluated inside the pilot (``evaluation: {python: tradeoff:objective}``);
the mapping it returns is the point's output.json."""
from __future__ import annotations

import math


def objective(width: int, depth: int, lr: float, **_: object) -> dict[str, float]:
    capacity = math.log2(width) * depth
    accuracy = 1.0 - 0.5 * math.exp(-capacity / 12.0) - 0.08 * abs(math.log10(lr) + 2.5)
    return {"accuracy": accuracy, "latency_ms": 0.05 * width * depth, "memory_gb": width * depth / 256.0}
