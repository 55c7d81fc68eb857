"""The unified search space: one format that every optimiser backend reads.

Types: ``float`` and ``int`` (low, high, optional ``log``, optional ``step``),
``categorical`` (choices of str, number or bool), ``fixed`` (value) and ``normal`` (mu,
sigma, optional ``log``, optional ``step``: unbounded, for the ATLAS normal methods). Any parameter may
carry ``when: {other: value}`` (or a list of values): it is active only where the other
parameter takes that value, and an inactive parameter is absent from a point.

Meaning shared by every backend:
- ``step`` is a grid anchored at ``low``: the values are ``low + k*step`` and the step must
  divide ``high - low``.
- ``log`` samples uniformly in ``ln(x)``; with ``step`` the log-uniform draw is rounded to
  the nearest grid value.
- an ``int`` range includes both ends.

The format lives in three modules, re-exported here (the import path every backend uses):
``space_params`` (the parameter kinds), ``searchspace`` (SearchSpace) and ``space_parse``
(parse_space, the task file's mapping checked).
"""
from __future__ import annotations

from gridhpo.steering.searchspace import Point, SearchSpace, unstorable
from gridhpo.steering.space_params import (
    MAX_INT,
    Categorical,
    Condition,
    Fixed,
    Float,
    Int,
    Normal,
    Numeric,
    Param,
    Scalar,
    finite_number,
    same_value,
)
from gridhpo.steering.space_parse import MAX_CHOICES, MAX_PARAMS, MAX_STEPS, TYPES, parse_space

__all__ = [
    "MAX_CHOICES", "MAX_INT", "MAX_PARAMS", "MAX_STEPS", "TYPES", "Categorical", "Condition", "Fixed",
    "Float", "Int", "Normal", "Numeric", "Param", "Point", "Scalar", "SearchSpace", "finite_number",
    "parse_space", "same_value", "unstorable",
]
