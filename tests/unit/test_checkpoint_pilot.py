"""The pilot's side (PilotCheckpoints) against planted checkpoints, on the folder store and S3:
the attempt starts from the newest genuine checkpoint, reports what it skipped and why, and
the evaluation's next save stays in its work directory (issue 14 items 6 and 7)."""
from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridhpo.checkpoints import open_store
from gridhpo.checkpoints.manifest import Manifest, point_prefix
from gridhpo.evaluation.checkpointing import PilotCheckpoints
from gridhpo.protocol import EvaluationSpec, PointMessage, PointObjective
from gridhpo.protocol.evaluation import CheckpointSpec
from gridhpo.protocol.events import CheckpointData, Event, parse_event
from tests.seaweed import s3_store_url
from tests.unit.test_checkpoint_archive import chain_members
from tests.unit.test_checkpoint_manifest import plant_newest


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'store'}"
    return s3_store_url(request.getfixturevalue("s3_endpoint"))


def _msg(attempt: int) -> PointMessage:
    return PointMessage(task_id=9, task_name="pilot", point_id=90, number=1, attempt=attempt, params={},
                        evaluation=EvaluationSpec(checkpoint=CheckpointSpec(interval=3600, max_size=1 << 20)),
                        objective=PointObjective())


@pytest.fixture
def pilot(store_url: str) -> Iterator[PilotCheckpoints]:
    p = PilotCheckpoints(store_url)
    yield p
    p.close()


def _attempt(pilot: PilotCheckpoints, attempt: int, workdir: Path, state: str) -> list[dict[str, Any]]:
    """One attempt: restore, the evaluation writes checkpoint/state.json, the final upload; its events."""
    (workdir / "checkpoint").mkdir(parents=True)
    events: list[dict[str, Any]] = []

    def report(data: dict[str, Any]) -> None:
        # as the pilot sends it: the typed payload, which survives the wire unchanged
        sent = Event.of(CheckpointData(**data), task_id=9, point_id=90, attempt=attempt, pilot_id="p").to_json()
        assert parse_event(json.loads(json.dumps(sent))).payload == CheckpointData(**data)
        events.append(data)

    cp = pilot.begin(_msg(attempt), workdir, report)
    (workdir / "checkpoint" / "state.json").write_text(state)
    cp.final()
    pilot.end()
    return events


def test_planted_link_chain_is_skipped_reported_and_the_next_save_stays_inside(
        pilot: PilotCheckpoints, store_url: str, tmp_path: Path) -> None:
    assert [e["restored"] for e in _attempt(pilot, 1, tmp_path / "a1", "epoch 1")] == [False]
    assert [e["restored"] for e in _attempt(pilot, 2, tmp_path / "a2", "epoch 2")] == [True, False]
    chain = tmp_path / "chain.tar"
    with tarfile.open(chain, "w") as tar:
        for info, _ in chain_members():
            tar.addfile(info)
    store = open_store(store_url)
    m = Manifest(store, point_prefix(9, "pilot", 1))
    plant_newest(m, chain)
    work = tmp_path.joinpath(*[f"d{i}" for i in range(9)])  # checkpoint/..(x10) is tmp_path
    events = _attempt(pilot, 3, work, "epoch 3")
    restored, saved = events
    assert restored["restored"] and restored["sequence"] == 1
    assert [s["key"] for s in restored["skipped"]] == [f"{m.prefix}00000002-a2.json"]
    assert "resolves outside" in restored["skipped"][0]["reason"]
    assert not saved["restored"] and saved["sequence"] == 3
    assert not (tmp_path / "outside").exists()
    assert (work / "checkpoint" / "state.json").read_text() == "epoch 3"
    store.close()


def test_folder_store_object_linked_to_dev_zero_is_skipped_not_fatal(tmp_path: Path) -> None:
    pilot = PilotCheckpoints(f"file://{tmp_path / 'store'}")
    _attempt(pilot, 1, tmp_path / "a1", "epoch 1")
    _attempt(pilot, 2, tmp_path / "a2", "epoch 2")
    m = Manifest(open_store(f"file://{tmp_path / 'store'}"), point_prefix(9, "pilot", 1))
    newest = tmp_path / "store" / m.entries()[-1].key
    newest.unlink()
    newest.symlink_to("/dev/zero")
    restored, _saved = _attempt(pilot, 3, tmp_path / "a3", "epoch 3")
    assert restored["sequence"] == 1 and "is not a regular file" in restored["skipped"][0]["reason"]
    pilot.close()
