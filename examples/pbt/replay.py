"""Replay the best member's schedule of a PBT task as a new task: one fresh run of
examples/pbt/train.py that changes lr and weight_decay at the recorded steps.

    gridhpo results pbt-digits --lineage --format json > schedule.json
    python examples/pbt/replay.py schedule.json > examples/pbt/replay.yaml
    gridhpo run examples/pbt/replay.yaml

The new task has no early stopping and one point; its ``schedule`` parameter carries the
schedule (a fixed value), which train.py applies epoch by epoch.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def replay_task(schedule: dict[str, Any], epochs: int | None = None, name: str = "pbt-replay") -> dict[str, Any]:
    """A task file (as a dict) that replays ``schedule`` (``gridhpo results --lineage --format json``)."""
    steps: list[tuple[float, dict[str, Any]]] = []
    for seg in schedule["schedule"]:
        config = {k: seg["config_after"][k] for k in ("lr", "weight_decay")}
        if not steps or steps[-1][1] != config:
            steps.append((seg["step"], config))
    end = int(epochs if epochs is not None else schedule["schedule"][-1]["until"])
    first = steps[0][1]
    here = Path(__file__).resolve().parent
    return {
        "name": name,
        "search_space": {"lr": {"type": "fixed", "value": first["lr"]},
                         "weight_decay": {"type": "fixed", "value": first["weight_decay"]},
                         "epochs": {"type": "fixed", "value": end},
                         "schedule": {"type": "fixed", "value": json.dumps(steps)}},
        "objective": {"metric": "loss", "mode": "min"},
        "optimiser": {"backend": "random", "seed": 0},
        "budget": {"max_points": 1, "parallel": 1},
        "evaluation": {"command": f'exec python "{here / "train.py"}"'},
    }


def main() -> None:
    schedule = json.loads(Path(sys.argv[1]).read_text())
    yaml.safe_dump(replay_task(schedule), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
