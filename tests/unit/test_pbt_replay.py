"""A recorded schedule replayed as a new task (examples/pbt/replay.py) reaches exactly the
weights of the member whose schedule it is: its state is copied whole at an exploit and its
shuffling depends on the epoch only."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pbt"


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"pbt_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[f"pbt_{name}"] = mod
    spec.loader.exec_module(mod)
    return mod


train, replay = _load("train"), _load("replay")


def test_a_replayed_schedule_reaches_the_members_weights(tmp_path: Path) -> None:
    a, b = {"lr": 0.2, "weight_decay": 1e-4}, {"lr": 0.03, "weight_decay": 1e-3}
    parent, member = tmp_path / "parent.npz", tmp_path / "member.npz"
    train.train(a, 3, parent, lambda **r: None)  # the parent's first segment
    shutil.copy(parent, member)  # the member exploits it at step 3 ...
    reports: list[dict[str, Any]] = []
    final = train.train(b, 6, member, lambda **r: reports.append(r))  # ... and trains on with b
    assert reports[0]["restored_step"] == 3 and (reports[0]["lr"], reports[0]["weight_decay"]) == (0.03, 1e-3)
    schedule = {"member": 1, "schedule": [
        {"step": 0.0, "until": 3.0, "config_after": {**a, "epoch_seconds": 0}},
        {"step": 3.0, "until": 6.0, "config_after": {**b, "epoch_seconds": 0}}]}
    task = replay.replay_task(schedule)
    params = {k: v["value"] for k, v in task["search_space"].items()}
    assert params["epochs"] == 6 and task["budget"]["max_points"] == 1
    again = train.train(params, params["epochs"], tmp_path / "replay.npz", lambda **r: None)
    assert again.digest() == final.digest()
