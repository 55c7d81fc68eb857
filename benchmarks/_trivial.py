"""The trivial objective the dispatch benchmark evaluates in the pilots' own process."""
from __future__ import annotations


def objective(x: float, y: float) -> float:
    return (x - 0.3) ** 2 + (y + 0.1) ** 2
