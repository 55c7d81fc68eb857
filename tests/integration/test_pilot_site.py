"""A pilot's own robustness (issue 12, items 7, 8, 13): heartbeats while a checkpoint upload
blocks, a full disk in prepare(), ``grace: 0``. Real Pilot objects with the process runtime,
on the embedded queue and on RabbitMQ, with points published as a steering would."""
from __future__ import annotations

import errno
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.checkpoints.local import LocalStore
from gridhpo.evaluation.pilot import Pilot, PilotConfig
from gridhpo.evaluation.runtimes.process import ProcessHandle
from gridhpo.protocol import (
    Broker,
    EvaluationSpec,
    Event,
    PointMessage,
    PointObjective,
    events_queue,
    parse_event,
    points_queue,
)
from gridhpo.protocol.auth import steering_signer
from gridhpo.protocol.messages import message_kind
from gridhpo.steering.reports import results
from gridhpo.steering.runner import submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import steering, until

pytestmark = pytest.mark.integration
TASK_ID = 7


def publish_point(broker: Broker, evaluation: dict[str, Any], number: int = 0) -> PointMessage:
    msg = PointMessage(task_id=TASK_ID, task_name="site", point_id=100 + number, number=number, attempt=1,
                       params={"x": 1.0}, evaluation=EvaluationSpec(), objective=PointObjective())
    # the evaluation section as given, also one no steering of ours would send; signed, since a
    # pilot runs only signed points
    broker.publish(points_queue(TASK_ID), steering_signer().sign({**msg.to_json(), "evaluation": evaluation}))
    return msg


def start(pilot: Pilot) -> threading.Thread:
    thread = threading.Thread(target=pilot.run, daemon=True)
    thread.start()
    return thread


class Events:
    """The events a pilot reports, as the steering would read them."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.seen: list[Event] = []

    def read(self) -> list[Event]:
        while (d := self.broker.get(events_queue(TASK_ID))) is not None:
            if message_kind(d.body) != "hello":  # the pilot's question about its token: no steering here
                self.seen.append(parse_event(d.body))
            d.ack()
        return self.seen

    def of(self, etype: str) -> list[Event]:
        return [e for e in self.read() if e.type == etype]


class BlockingStore(LocalStore):
    """A store whose uploads wait until the test releases them."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.entered_at = 0.0

    def put(self, key: str, path: Path) -> None:
        if not self.entered.is_set():
            self.entered_at = time.time()
            self.entered.set()
        assert self.release.wait(120), "the test never released the upload"
        super().put(key, path)


def test_heartbeats_go_out_while_a_checkpoint_upload_blocks(servers: tuple[str, str], tmp_path: Path) -> None:
    _, broker_url = servers
    url = f"file://{tmp_path / 'store'}"
    store = BlockingStore(url)
    go_on = tmp_path / "go-on"
    # saves a checkpoint, then runs until the test lets it finish
    command = (f"echo 1 > checkpoint/state; while [ ! -e {go_on} ]; do sleep 0.05; done; "
               """echo '{"status": 0, "loss": 0.5}' > output.json""")
    with Broker(broker_url) as broker:
        publish_point(broker, {"command": command, "heartbeat": 0.2, "checkpoint": {"interval": 0.2}})
        pilot = Pilot(broker, PilotConfig(task_id=TASK_ID, max_points=1, workroot=tmp_path / "work", store=url))
        pilot.checkpoints._stores[url] = store
        thread = start(pilot)
        events = Events(broker)
        try:
            assert store.entered.wait(60), "no checkpoint upload began"
            until(lambda: len([e for e in events.of("heartbeat") if e.time > store.entered_at]) >= 3, 60,
                  "heartbeats while the upload is blocked")
        finally:
            store.release.set()
            go_on.touch()
            thread.join(60)
        assert not thread.is_alive()
        assert [e.data["value"] for e in events.of("finished")] == [0.5]
        assert events.of("checkpoint"), "the upload completed once released"


def test_a_full_disk_in_prepare_is_the_sites_problem_and_the_point_runs_elsewhere(servers: tuple[str, str],
                                                                                 tmp_path: Path) -> None:
    db, broker_url = servers
    repo = Repository(db)
    spec = parse_task({
        "name": "fulldisk", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
        "budget": {"max_points": 1},
        "evaluation": {"command": """echo '{"status": 0, "loss": 0.25}' > output.json""", "heartbeat": 1,
                       "lost_after": 30},
    })
    tid, _ = submit(repo, spec)
    token = repo.task(tid).token

    def full(_msg: PointMessage, _settings: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with steering(repo, broker_url, tid), Broker(broker_url) as broker:
        full_pilot = Pilot(broker, PilotConfig(task_id=tid, pilot_id="full-disk", workroot=tmp_path / "a",
                                               token=token))
        full_pilot.workdirs.prepare = full  # type: ignore[method-assign]
        stats = full_pilot.run()  # returns: the pilot stops, it does not crash
        assert stats.interrupted == 1 and stats.failed == 0
        assert "No space left on device" in stats.exit_reason
        good = Pilot(broker, PilotConfig(task_id=tid, pilot_id="roomy", workroot=tmp_path / "b", token=token,
                                         idle_timeout=60))
        thread = start(good)
        until(lambda: repo.task(tid).state == "finished", 120, "the point to finish on the other pilot")
        good.request_stop("test over")
        thread.join(60)
    (row,) = results(repo, repo.task(tid))
    assert row["state"] == "finished" and row["value"] == 0.25
    assert [(a["state"], a["pilot"]) for a in row["attempts"]] == [("interrupted", "full-disk"),
                                                                    ("finished", "roomy")]
    assert row["attempts"][0]["end_reason"] == "site"


def test_grace_zero_means_no_grace_period(servers: tuple[str, str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _, broker_url = servers
    graces: list[float] = []
    original = ProcessHandle.stop

    def spy(self: ProcessHandle, grace: float) -> int:
        graces.append(grace)
        return original(self, grace)

    monkeypatch.setattr(ProcessHandle, "stop", spy)
    with Broker(broker_url) as broker:
        publish_point(broker, {"command": "sleep 60", "timeout": 0.5, "grace": 0, "heartbeat": 0.2})
        pilot = Pilot(broker, PilotConfig(task_id=TASK_ID, max_points=1, workroot=tmp_path / "work"))
        stats = pilot.run()
        assert stats.failed == 1
        failed = Events(broker).of("failed")
        assert len(failed) == 1 and "evaluation.timeout of 0.5s exceeded" in failed[0].data["reason"]
    assert graces and graces[0] == 0.0


def test_a_point_with_an_impossible_heartbeat_fails_with_the_reason(servers: tuple[str, str],
                                                                    tmp_path: Path) -> None:
    _, broker_url = servers
    with Broker(broker_url) as broker:
        publish_point(broker, {"command": "true", "heartbeat": 0})
        pilot = Pilot(broker, PilotConfig(task_id=TASK_ID, max_points=1, workroot=tmp_path / "work"))
        assert pilot.run().failed == 1
        (failed,) = Events(broker).of("failed")
        assert "evaluation.heartbeat: 0 is not a number of seconds above 0" in failed.data["reason"]


# what an evaluation does when the pilot's SIGTERM comes: it had written its output already
# (it was finishing), it writes its current loss then (no final result), or it exits 0 without one
DONE_BEFORE = """echo '{"status": 0, "loss": 0.5}' > output.json; trap 'exit 0' TERM; touch {ready}; """ \
              "while true; do sleep 0.05; done"
WRITES_ON_TERM = """trap 'echo "{\\"status\\": 0, \\"loss\\": 0.9}" > output.json; exit 0' TERM; """ \
                 "touch {ready}; while true; do sleep 0.05; done"
EXITS_ON_TERM = "trap 'exit 0' TERM; touch {ready}; while true; do sleep 0.05; done"


@pytest.mark.parametrize(("command", "outcome"), [(DONE_BEFORE, "finished"), (WRITES_ON_TERM, "interrupted"),
                                                  (EXITS_ON_TERM, "interrupted")])
def test_an_output_written_before_the_pilots_stop_is_the_result_and_one_written_after_is_not(
        servers: tuple[str, str], tmp_path: Path, command: str, outcome: str) -> None:
    """A result written before the stop is the point's result, not a retry spending another
    walltime slot to compute it again; an output written on SIGTERM is a stopped run's loss."""
    _, broker_url = servers
    ready = tmp_path / "ready"
    with Broker(broker_url) as broker:
        publish_point(broker, {"command": command.replace("{ready}", str(ready)), "grace": 10, "heartbeat": 0.2})
        pilot = Pilot(broker, PilotConfig(task_id=TASK_ID, workroot=tmp_path / "work",
                                          hello_timeout=0.2))  # no steering here to answer
        thread = start(pilot)
        until(ready.exists, 60, "the evaluation to start")
        pilot.request_stop("pilot received SIGTERM")  # what the pilot's signal handler does
        thread.join(60)
        assert not thread.is_alive()
        events = Events(broker)
        ended = [e.type for e in events.read() if e.type in ("finished", "failed", "interrupted")]
    assert ended == [outcome]
    if outcome == "finished":
        assert [e.data["value"] for e in events.of("finished")] == [0.5] and pilot.stats.interrupted == 0
    else:
        assert events.of("interrupted")[0].data["cause"] == "signal" and pilot.stats.interrupted == 1
