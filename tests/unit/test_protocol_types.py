"""One typed protocol: the evaluation section a user writes reaches the pilot as written
(``grace: 0`` once became 30 s on its way), stored tasks of earlier versions still load,
and every event type's payload survives the wire."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridhpo.errors import MessageError
from gridhpo.evaluation.settings import AttemptSettings
from gridhpo.protocol import EVENT_TYPES, Event, PointMessage, PointObjective, parse_event, parse_point
from gridhpo.protocol.evaluation import CheckpointSpec, EvaluationSpec, FilesSpec, Resources
from gridhpo.protocol.events import (
    PAYLOADS,
    CheckpointData,
    FailedData,
    FinishedData,
    HeartbeatData,
    InterruptedData,
    MetricData,
    Payload,
    StartedData,
)
from gridhpo.protocol.points import UnusablePoint
from gridhpo.steering.taskfile import TaskSpec, load_task

# every field of the evaluation section with a value other than its default, as a user
# writes it in a task file, and as the pilot must see it
WRITTEN: list[tuple[str, Any, Any]] = [
    ("command", "./run.sh", "./run.sh"),
    ("image", "alpine:3", "alpine:3"),
    ("python", "pkg.mod:fn", "pkg.mod:fn"),
    ("source_dir", "/srv/task", "/srv/task"),
    ("env", {"A": "1"}, {"A": "1"}),
    ("timeout", "5m", 300.0),
    ("grace", 0, 0.0),
    ("heartbeat", 0.5, 0.5),
    ("lost_after", 11, 11.0),
    ("checkpoint.interval", 0, 0.0),
    ("checkpoint.keep", 1, 1),
    ("checkpoint.max_size", 1, 1),
    ("checkpoint.store", "file:///srv/store", "file:///srv/store"),
    ("checkpoint.signing_key", "env:KEY", "env:KEY"),
    ("resources.cpus", 0, 0.0),
    ("resources.gpus", 2, 2),
    ("resources.memory", "2g", "2g"),
    # the ATLAS evaluation contract (docs/atlas.md)
    ("checkpoint.save", ["model.h5", "logs/ckpt"], ["model.h5", "logs/ckpt"]),
    ("files.input", "params.json", "params.json"),
    ("files.output", "result.json", "result.json"),
    ("files.training_data", "ds.json", "ds.json"),
    ("files.meta", "meta.json", "meta.json"),
    ("files.metrics", "metrics.tgz", "metrics.tgz"),
    ("training_data", ["a.h5", "/data/b.h5"], ["a.h5", "/data/b.h5"]),
    ("points_per_job", 4, 4),
]


SECTIONS: dict[str, type[Any]] = {"checkpoint": CheckpointSpec, "resources": Resources, "files": FilesSpec}


def field_paths(cls: type[Any], prefix: str = "") -> set[str]:
    paths = set()
    for f in dataclasses.fields(cls):
        if f.name in SECTIONS:
            paths |= field_paths(SECTIONS[f.name], f"{f.name}.")
        else:
            paths.add(prefix + f.name)
    return paths


def test_the_round_trip_covers_every_evaluation_field() -> None:
    # checkpoint.load needs checkpoint.save: its own test below
    assert {path for path, _, _ in WRITTEN} | {"checkpoint.load"} == field_paths(EvaluationSpec)


def test_checkpoint_load_reaches_the_pilot(tmp_path: Path) -> None:
    got = reach_the_pilot(tmp_path, {"command": "true", "checkpoint": {"save": ["m"], "load": "ckpt.tgz"}})
    assert got.evaluation.checkpoint.load == "ckpt.tgz" and got.evaluation.checkpoint.save == ["m"]
    assert got.evaluation.checkpoint.max_size == 100_000_000  # phpo's cap, the default with a save list


def reach_the_pilot(tmp_path: Path, evaluation: dict[str, Any]) -> PointMessage:
    """Task file -> TaskSpec -> the bookkeeping's JSON -> TaskSpec -> point message on the wire
    -> the pilot's parse."""
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
                                    "evaluation": evaluation}))
    stored = json.loads(json.dumps(load_task(path).to_dict()))
    spec = TaskSpec.from_dict(stored)
    sent = PointMessage(task_id=1, task_name="t", point_id=2, number=0, attempt=1, params={"x": 0.5},
                        evaluation=spec.evaluation, objective=PointObjective(metric=spec.objective.metric))
    return parse_point(json.loads(json.dumps(sent.to_json())))


@pytest.mark.parametrize(("path", "written", "seen"), WRITTEN, ids=[p for p, _, _ in WRITTEN])
def test_each_evaluation_field_reaches_the_pilot_as_written(tmp_path: Path, path: str, written: Any,
                                                            seen: Any) -> None:
    evaluation: dict[str, Any] = {} if path == "python" else {"command": "true"}
    section, _, key = path.rpartition(".")
    (evaluation.setdefault(section, {}) if section else evaluation)[key] = written
    got = reach_the_pilot(tmp_path, evaluation).evaluation
    assert getattr(getattr(got, section) if section else got, key) == seen
    if path == "grace":
        assert AttemptSettings.typed(got, PointObjective()).grace == 0.0


def test_fields_left_out_take_the_defaults_defined_once(tmp_path: Path) -> None:
    got = reach_the_pilot(tmp_path, {"command": "true"}).evaluation
    assert dataclasses.replace(got, source_dir=None) == EvaluationSpec(command="true")
    assert EvaluationSpec.from_wire({}) == EvaluationSpec()


def test_a_task_stored_by_an_earlier_version_still_loads() -> None:
    """The bookkeeping's JSON as version 2 wrote it (dataclasses.asdict of the evaluation)."""
    stored = {
        "name": "old", "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False}},
        "objective": {"metric": "acc", "mode": "max", "failure_value": None},
        "optimiser": {"backend": "random", "algorithm": None, "seed": 3, "options": {}, "command": None,
                      "image": None, "timeout": None},
        "budget": {"max_points": 5, "parallel": 1, "max_failures": None, "max_attempts": 3, "min_queued": 0},
        "evaluation": {"command": "true", "image": None, "python": None, "source_dir": "/srv", "env": {},
                       "timeout": None, "grace": 0.0, "heartbeat": 10.0, "lost_after": 120.0,
                       "checkpoint": {"interval": 300.0, "keep": 3, "max_size": 1 << 30, "store": None,
                                      "signing_key": None},
                       "resources": {"cpus": 1.0, "gpus": 0, "memory": None}},
        "early_stopping": {"scheduler": "none", "resource": "epoch", "min_resource": 1, "max_resource": 81,
                           "reduction_factor": 3, "grace": 0, "revive": False, "options": {}},
    }
    spec = TaskSpec.from_dict(stored)
    assert spec.evaluation.grace == 0.0 and spec.objective.metric == "acc"
    now = spec.to_dict()["evaluation"]  # later fields added with their defaults
    assert {k: now[k] for k in stored["evaluation"] if k != "checkpoint"} == {
        k: v for k, v in stored["evaluation"].items() if k != "checkpoint"}
    assert {**stored["evaluation"]["checkpoint"], "save": [], "load": None} == now["checkpoint"]
    assert now["files"] == dataclasses.asdict(FilesSpec()) and now["training_data"] is None
    assert EvaluationSpec.from_wire(stored["evaluation"]) == spec.evaluation


@pytest.mark.parametrize(("wire", "message"), [
    ({"checkpoint": {"keep": 0}}, "evaluation.checkpoint.keep: 0 is not an integer of 1 or more"),
    ({"checkpoint": "often"}, "evaluation.checkpoint: often is not a mapping"),
    ({"resources": {"cpus": -1}}, "evaluation.resources.cpus: -1 is not a number of 0 or more"),
    ({"resources": {"memory": 2}}, "evaluation.resources.memory: 2 is not text"),
    ({"lost_after": None}, "evaluation.lost_after: None is not a number of seconds above 0"),
    ({"env": {"A": 1}}, "evaluation.env: {'A': 1} is not a mapping of strings"),
    ({"command": ["ls"]}, r"evaluation.command: \['ls'\] is not text"),
])
def test_a_bad_evaluation_field_is_named(wire: dict[str, Any], message: str) -> None:
    with pytest.raises(MessageError, match=message):
        EvaluationSpec.from_wire(wire)


def test_a_point_with_a_bad_evaluation_names_its_attempt_so_the_pilot_can_fail_it() -> None:
    body = PointMessage(task_id=4, task_name="t", point_id=7, number=3, attempt=2, params={},
                        evaluation=EvaluationSpec(command="true"), objective=PointObjective()).to_json()
    with pytest.raises(UnusablePoint, match=r"evaluation\.grace: -1") as caught:
        parse_point({**body, "evaluation": {"command": "true", "grace": -1}})
    assert (caught.value.task_id, caught.value.point_id, caught.value.number, caught.value.attempt) == (4, 7, 3, 2)
    with pytest.raises(UnusablePoint, match=r"objective\.mode: 'up' is not one of min, max"):
        parse_point({**body, "objective": {"metric": "loss", "mode": "up"}})


PAYLOAD_EXAMPLES: list[Payload] = [
    StartedData(host="node1"),
    HeartbeatData(),
    MetricData(seq=3, values={"loss": 0.5, "epoch": 2}, step=2.0),
    CheckpointData(key="t/1/ck-3", size=10, sha256="0" * 64, sequence=3, attempt=1, time=5.0, final=True),
    CheckpointData(key="t/1/ck-2", size=10, sha256="0" * 64, sequence=2, attempt=1, time=4.0, restored=True,
                   skipped=[{"key": "t/1/ck-3", "reason": "checksum mismatch"}]),
    FinishedData(value=0.25, message="ok", metrics={"acc": 0.9}),
    FailedData(reason="exit 1", stderr="Traceback"),
    InterruptedData(reason="early stop", decision="stop"),
]


def test_every_event_type_has_one_payload_class() -> None:
    assert tuple(PAYLOADS) == EVENT_TYPES
    assert {type(p).TYPE.value for p in PAYLOAD_EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("payload", PAYLOAD_EXAMPLES, ids=[type(p).TYPE.value for p in PAYLOAD_EXAMPLES])
def test_each_payload_survives_the_wire(payload: Payload) -> None:
    ev = Event.of(payload, task_id=1, point_id=2, attempt=1, pilot_id="p")
    got = parse_event(json.loads(json.dumps(ev.to_json())))
    assert got == ev and got.type == type(payload).TYPE and got.payload == payload


@pytest.mark.parametrize(("etype", "data", "seen"), [
    ("failed", {}, FailedData(reason="evaluation failed")),
    ("failed", {"reason": ""}, FailedData(reason="evaluation failed")),
    ("interrupted", {"reason": None, "cause": "walltime"}, InterruptedData(cause="walltime")),
    ("finished", {"value": 1, "message": ""}, FinishedData(value=1.0)),
    ("metric", {"seq": 0, "values": {}, "step": None}, MetricData(seq=0, values={})),
    ("started", {}, StartedData()),
])
def test_fields_left_out_of_an_event_take_their_defaults(etype: str, data: dict[str, Any], seen: Payload) -> None:
    ev = Event(type=etype, task_id=1, point_id=2, attempt=1, pilot_id="p", data=data)
    assert parse_event(ev.to_json()).payload == seen


@pytest.mark.parametrize(("etype", "data", "message"), [
    ("checkpoint", {"key": "k", "size": 1, "sequence": 0}, "checkpoint event: data field 'sha256'"),
    ("checkpoint", {"key": "k", "size": -1, "sha256": "0", "sequence": 0}, "'size' must be an integer of 0"),
    ("finished", {"value": 1.0, "metrics": [1]}, "finished event: data field 'metrics' must be an object"),
    ("interrupted", {"reason": 5}, "interrupted event: data field 'reason' must be a string"),
])
def test_a_bad_payload_field_is_named(etype: str, data: dict[str, Any], message: str) -> None:
    body = Event(type=etype, task_id=1, point_id=2, attempt=1, pilot_id="p", data=data).to_json()
    with pytest.raises(MessageError, match=message):
        parse_event(body)
