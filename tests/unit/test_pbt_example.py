"""The PBT example's model (examples/pbt/train.py): resumable bit for bit, hyperparameters
from the config and never from the checkpoint, and worth a schedule."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

PATH = Path(__file__).resolve().parents[2] / "examples" / "pbt" / "train.py"
spec = importlib.util.spec_from_file_location("pbt_train", PATH)
assert spec is not None and spec.loader is not None
train_mod = importlib.util.module_from_spec(spec)
sys.modules["pbt_train"] = train_mod
spec.loader.exec_module(train_mod)


def _run(params: dict[str, Any], until: int, ckpt: Path) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = []
    train_mod.train(params, until, ckpt, lambda **r: reports.append(r))
    return reports


def test_training_resumed_from_its_checkpoint_is_bit_identical(tmp_path: Path) -> None:
    p = {"lr": 0.05, "weight_decay": 1e-4}
    straight = _run(p, 6, tmp_path / "a.npz")
    first = _run(p, 3, tmp_path / "b.npz")
    rest = _run(p, 6, tmp_path / "b.npz")
    assert [r["loss"] for r in first + rest] == [r["loss"] for r in straight]
    assert rest[0]["restored_step"] == 3 and first[0]["restored_step"] == 0


def test_a_segment_takes_its_weights_from_the_checkpoint_and_its_config_from_the_params(tmp_path: Path) -> None:
    parent = tmp_path / "parent.npz"
    _run({"lr": 0.05, "weight_decay": 1e-4}, 4, parent)
    weights = train_mod.State.load(parent)
    copy = tmp_path / "child.npz"
    copy.write_bytes(parent.read_bytes())  # the steering's copy of the parent's checkpoint
    child = _run({"lr": 0.001, "weight_decay": 0.0}, 5, copy)
    assert child[0]["restored_step"] == 4 and child[0]["restored_digest"] == weights.digest()
    again = _run({"lr": 0.2, "weight_decay": 0.0}, 5, parent)
    assert again[0]["loss"] != child[0]["loss"]  # the new lr is used, not one stored with the weights


def test_a_decaying_learning_rate_beats_the_same_budget_at_a_fixed_one(tmp_path: Path) -> None:
    fixed = _run({"lr": 0.3, "weight_decay": 1e-3}, 12, tmp_path / "fixed.npz")[-1]["loss"]
    _run({"lr": 0.3, "weight_decay": 1e-3}, 6, tmp_path / "sched.npz")
    scheduled = _run({"lr": 0.03, "weight_decay": 1e-4}, 12, tmp_path / "sched.npz")[-1]["loss"]
    assert np.isfinite(fixed) and scheduled < fixed
