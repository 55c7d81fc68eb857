"""First-order variance decomposition (an fANOVA main-effect estimate without the forest).

Each parameter's share is its correlation ratio: the variance of the objective's mean
over bins of that parameter (quantile bins for numbers, one bin per choice), divided by
the objective's variance. Interactions are not counted; numpy only, fast at any size.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gridhpo.plots.importance._base import Importance, normalise


class AnovaImportance(Importance):
    name = "anova"
    description = ("first-order variance decomposition: the share of the objective's variance explained by "
                   "each parameter's binned means (fANOVA main effects, no interactions)")

    def __init__(self, bins: int = 10) -> None:
        self.bins = bins

    def estimate(self, X: NDArray[np.float64], y: NDArray[np.float64], categorical: list[bool]) -> NDArray[np.float64]:
        total = float(np.var(y))
        if len(y) < 2 or total <= 0:
            return np.zeros(X.shape[1])
        raw = np.zeros(X.shape[1])
        for j in range(X.shape[1]):
            groups = self._groups(X[:, j], categorical[j])
            means = np.zeros(len(y))
            for g in np.unique(groups):
                sel = groups == g
                means[sel] = y[sel].mean()
            raw[j] = np.var(means) / total
        return normalise(raw)

    def _groups(self, col: NDArray[np.float64], categorical: bool) -> NDArray[np.float64]:
        missing = np.isnan(col)
        out = np.full(len(col), -1.0)  # an inactive conditional parameter is its own group
        present = col[~missing]
        if present.size == 0:
            return out
        if categorical or np.unique(present).size <= self.bins:
            out[~missing] = present
            return out
        edges = np.unique(np.quantile(present, np.linspace(0, 1, self.bins + 1)[1:-1]))
        out[~missing] = np.searchsorted(edges, present, side="right")
        return out
