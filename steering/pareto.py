"""Pareto fronts and hypervolumes of minimised objective vectors (pure Python, no numpy:
``gridhpo results --pareto`` runs on the light install too).

Every function takes vectors to *minimise*: a task's values are turned so by ``signed`` (a
maximised objective negated). A vector dominates another when it is no worse in every
objective and better in at least one; the front is the set no other vector dominates.
"""
from __future__ import annotations

from collections.abc import Sequence

Vector = tuple[float, ...]


def signed(values: Sequence[float], modes: Sequence[str]) -> Vector:
    """``values`` in the task's directions as a vector to minimise."""
    return tuple(v if m == "min" else -v for v, m in zip(values, modes, strict=True))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def front(vectors: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the non-dominated vectors. Equal vectors are all kept: none
    dominates the other. Sorted lexicographically first, a vector can only be dominated by
    one before it, and only front members need checking: O(n * front size)."""
    order = sorted(range(len(vectors)), key=lambda i: tuple(vectors[i]))
    kept: list[int] = []
    for i in order:
        if not any(dominates(vectors[j], vectors[i]) for j in kept):
            kept.append(i)
    return sorted(kept)


def reference_point(vectors: Sequence[Sequence[float]], margin: float = 0.1) -> Vector:
    """A reference point just worse than every vector in every objective (the worst value plus
    ``margin`` of the range, or of 1 where the range is empty)."""
    dims = len(vectors[0])
    ref = []
    for d in range(dims):
        col = [v[d] for v in vectors]
        span = max(col) - min(col)
        ref.append(max(col) + margin * (span if span > 0 else 1.0))
    return tuple(ref)


def hypervolume(vectors: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """The volume dominated by ``vectors`` and bounded by ``ref`` (vectors not better than
    ``ref`` in every objective add nothing). Exact: a sweep in 2-d, slicing along the last
    objective above (fine for the fronts of a few hundred points an HPO task has)."""
    pts = [tuple(v) for v in vectors if all(x < r for x, r in zip(v, ref, strict=True))]
    if not pts:
        return 0.0
    pts = [pts[i] for i in front(pts)]
    if len(ref) == 1:
        return float(ref[0] - min(p[0] for p in pts))
    if len(ref) == 2:
        return _sweep_2d(pts, (ref[0], ref[1]))
    # slices between consecutive values of the last objective: each is the (d-1)-volume of
    # the points at or below it, times its thickness
    pts.sort(key=lambda p: p[-1])
    total = 0.0
    for k, p in enumerate(pts):
        upper = pts[k + 1][-1] if k + 1 < len(pts) else ref[-1]
        if upper > p[-1]:
            total += (upper - p[-1]) * hypervolume([q[:-1] for q in pts[:k + 1]], ref[:-1])
    return total


def _sweep_2d(pts: list[Vector], ref: tuple[float, float]) -> float:
    total = 0.0
    best_y = ref[1]
    for x, y in sorted(pts):
        if y < best_y:
            total += (ref[0] - x) * (best_y - y)
            best_y = y
    return total
