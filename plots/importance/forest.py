"""Random-forest importance: scikit-learn's mean decrease in impurity over a fixed-seed forest.

Counts interactions (a split on one parameter below a split on another), as Optuna's
default evaluator does. A large task is subsampled to ``max_samples`` points so the
report stays fast.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gridhpo.errors import ConfigError
from gridhpo.plots.importance._base import Importance, normalise


class ForestImportance(Importance):
    name = "forest"
    description = ("random forest (scikit-learn, 64 trees, seed 0): mean decrease in impurity of the objective "
                   "per parameter, interactions included")

    def __init__(self, trees: int = 64, max_samples: int = 4000, seed: int = 0) -> None:
        self.trees, self.max_samples, self.seed = trees, max_samples, seed

    def estimate(self, X: NDArray[np.float64], y: NDArray[np.float64], categorical: list[bool]) -> NDArray[np.float64]:
        try:
            from sklearn.ensemble import RandomForestRegressor
        except ImportError as exc:
            raise ConfigError("parameter importance 'forest' needs scikit-learn: pip install 'gridhpo[plot]' "
                              "(or choose --importance anova)") from exc
        if len(y) < 2 or float(np.var(y)) <= 0:
            return np.zeros(X.shape[1])
        rng = np.random.default_rng(self.seed)
        if len(y) > self.max_samples:
            keep = rng.choice(len(y), self.max_samples, replace=False)
            X, y = X[keep], y[keep]
        # an inactive conditional parameter sits below every real value of its column
        X = X.copy()
        for j in range(X.shape[1]):
            col = X[:, j]
            miss = np.isnan(col)
            if miss.any():
                lo = np.nanmin(col) if (~miss).any() else 0.0
                col[miss] = lo - 1.0
        forest = RandomForestRegressor(n_estimators=self.trees, min_samples_leaf=2, random_state=self.seed, n_jobs=1)
        forest.fit(X, y)
        return normalise(np.asarray(forest.feature_importances_, dtype=float))
