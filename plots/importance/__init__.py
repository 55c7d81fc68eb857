"""Parameter importance estimators, by name."""
from __future__ import annotations

from typing import Any

import numpy as np

from gridhpo.errors import unknown_name
from gridhpo.plots.data import TaskData, encode
from gridhpo.plots.importance._base import Importance
from gridhpo.plots.importance.anova import AnovaImportance
from gridhpo.plots.importance.forest import ForestImportance

ESTIMATORS: dict[str, type[Importance]] = {"forest": ForestImportance, "anova": AnovaImportance}
DEFAULT = "forest"

__all__ = ["DEFAULT", "ESTIMATORS", "Importance", "get", "importance"]


def get(name: str) -> Importance:
    try:
        return ESTIMATORS[name]()
    except KeyError:
        raise unknown_name("importance method", name, ESTIMATORS) from None


def importance(d: TaskData, method: str = DEFAULT) -> dict[str, Any]:
    """Each varying parameter's share of the objective's variation, largest first."""
    est = get(method)
    fin = d.finished()
    params = [i for i in d.params if i.kind != "fixed"]
    out: dict[str, Any] = {"method": est.name, "description": est.description, "n": len(fin),
                           "params": [], "scores": []}
    if len(fin) < 4 or not params:
        out["note"] = "too few finished points" if params else "no varying parameter"
        return out
    X = np.array([[np.nan if (v := encode(i, p.params.get(i.name))) is None else v for i in params] for p in fin],
                 dtype=float)
    y = np.array([float(p.value or 0.0) for p in fin])
    shares = est.estimate(X, y, [i.categorical for i in params])
    order = sorted(range(len(params)), key=lambda j: (-shares[j], params[j].name))
    out["params"] = [params[j].name for j in order]
    out["scores"] = [float(shares[j]) for j in order]
    return out
