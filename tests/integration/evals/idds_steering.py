"""A steering that knows only the iDDS steering-container contract, nothing of gridhpo.

    python idds_steering.py IN OUT NUM_POINTS MAX_POINTS [--seed S] [--mode MODE] [--end-after K]

It reads IN (``{"points": [[point, loss_or_null], ...], "opt_space": ...}``), draws NUM_POINTS new
random points of ``opt_space`` not in IN (capped by MAX_POINTS) and writes them to OUT as a
JSON list. ``opt_space`` is what the task gave: here a mapping name -> {type, low, high, log,
step, choices, value, when}. Its random generator is seeded by the seed and by how many points
IN holds, so the same input gives the same output. An hpogrid space (name -> {method,
dimension}, what phpo's searchSpaceFile holds) is read too: categorical, uniform, uniformint,
loguniform.

Modes, to test the steering's failures: ``invalid`` writes a point outside the space,
``crash`` writes to stderr and exits 3, ``crash-once`` crashes unless the file ``crashed``
exists beside this script (then runs normally), ``garbage`` writes an OUT that is not JSON.
``--end-after K`` writes ``[]`` once IN holds K points.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any


def active(spec: dict[str, Any], point: dict[str, Any]) -> bool:
    when = spec.get("when")
    if not when:
        return True
    (parent, values), = when.items()
    values = values if isinstance(values, list) else [values]
    return parent in point and any(type(point[parent]) is type(v) and point[parent] == v for v in values)


def from_hpogrid(spec: dict[str, Any]) -> dict[str, Any]:
    dim, method = spec["dimension"], spec["method"]
    if method == "categorical":
        return {"type": "categorical", "choices": dim["categories"]}  # a value listed twice weighs twice
    kind = {"uniform": "float", "uniformint": "int", "loguniform": "float"}[method]
    return {"type": kind, "low": dim["low"], "high": dim["high"], "log": method == "loguniform"}


def draw(spec: dict[str, Any], rng: random.Random) -> Any:
    if "method" in spec:
        spec = from_hpogrid(spec)
    kind = spec["type"]
    if kind == "fixed":
        return spec["value"]
    if kind == "categorical":
        return rng.choice(spec["choices"])
    low, high, step = spec["low"], spec["high"], spec.get("step")
    if kind == "int" and not spec.get("log"):
        return low + rng.randrange((high - low) // (step or 1) + 1) * (step or 1)
    if spec.get("log"):
        x = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        x = rng.uniform(low, high)
    if step:
        x = low + round((x - low) / step) * step
        x = min(max(x, low), high)
    if kind == "int":
        return min(max(round(x), low), high)
    return round(x, 12) if step else x


def sample(space: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    point: dict[str, Any] = {}
    pending = dict(space)
    while pending:  # a conditioned parameter waits for its parent
        for name, spec in list(pending.items()):
            parent = next(iter(spec["when"])) if spec.get("when") else None
            if parent is not None and parent in pending:
                continue
            del pending[name]
            if active(spec, point):
                point[name] = draw(spec, rng)
    return point


def key(point: dict[str, Any]) -> str:
    return repr(sorted((k, type(v).__name__, v) for k, v in point.items()))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("num", type=int)
    ap.add_argument("max", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--end-after", type=int, default=None)
    args = ap.parse_args()
    with open(args.inp) as f:
        data = json.load(f)
    points, space = data["points"], data["opt_space"]
    if args.mode == "crash" or (args.mode == "crash-once" and not (Path(__file__).parent / "crashed").exists()):
        if args.mode == "crash-once":
            (Path(__file__).parent / "crashed").write_text("")
        print("steering: the optimizer blew up", file=sys.stderr)
        return 3
    if args.mode == "garbage":
        Path(args.out).write_text("{not json")
        return 0
    if args.end_after is not None and len(points) >= args.end_after:
        Path(args.out).write_text("[]")
        return 0
    rng = random.Random(f"{args.seed}:{len(points)}")
    seen = {key(p) for p, _ in points}
    new: list[dict[str, Any]] = []
    for _ in range(min(args.num, args.max - len(points))):
        for _ in range(1000):
            point = sample(space, rng)
            if key(point) not in seen:
                break
        seen.add(key(point))
        new.append(point)
    if args.mode == "invalid" and new:
        name, spec = next((n, s) for n, s in space.items() if s.get("type") in ("float", "int"))
        new[0][name] = spec["high"] * 10 + 1
    Path(args.out).write_text(json.dumps(new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
