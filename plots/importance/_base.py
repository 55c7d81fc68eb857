"""The parameter-importance interface."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from numpy.typing import NDArray


class Importance(ABC):
    """Estimates how much of the objective's variation each parameter explains.

    Contract: ``estimate(X, y, categorical)`` takes one row per finished point and one
    column per parameter (numbers on the figure's axis: log10 for log ranges, the choice
    index for categories, NaN where a conditional parameter is inactive) and returns one
    non-negative share per column, summing to 1 when ``y`` varies (all zeros when it does
    not). It is deterministic: the same input gives the same shares.
    """

    name: str = ""
    #: a sentence for the report: what the numbers are
    description: str = ""

    @abstractmethod
    def estimate(self, X: NDArray[np.float64], y: NDArray[np.float64], categorical: list[bool]) -> NDArray[np.float64]:
        """One share per column of X."""


def normalise(raw: NDArray[np.float64]) -> NDArray[np.float64]:
    raw = np.clip(np.nan_to_num(raw, nan=0.0), 0.0, None)
    total = float(raw.sum())
    return raw / total if total > 0 else np.zeros_like(raw)
