"""The Branin function (global minimum 0.397887), as an evaluation that follows the plain
contract: read input.json from the working directory, write output.json. No gridhpo import."""
from __future__ import annotations

import json
import math


def branin(x1: float, x2: float) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


def objective(x1: float, x2: float) -> float:
    """The in-process form (``evaluation: {python: "branin:objective"}``)."""
    return branin(x1, x2)


if __name__ == "__main__":
    with open("input.json") as f:
        p = json.load(f)
    with open("output.json", "w") as f:
        json.dump({"status": 0, "loss": branin(p["x1"], p["x2"]), "message": ""}, f)
