"""The hpogrid README's simple objective: a function model(config, reporter)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def simple_objective(config: dict[str, Any], reporter: Callable[..., None]) -> None:
    loss = (config["height"] - 14) ** 2 - abs(config["width"] - 3)
    reporter(loss=loss)
