"""The trivial objective the dispatch benchmark evaluates in the pilots' own process."""
from __future__ import annotations

import time


def objective(x: float, y: float) -> float:
    return (x - 0.3) ** 2 + (y + 0.1) ** 2


def sleepy(x: float, y: float) -> float:
    """An evaluation that waits a little, as one on another machine would: it costs this
    machine no CPU, so what slows it is the steering."""
    time.sleep(0.005)
    return objective(x, y)
