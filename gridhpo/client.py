"""The ask/tell client: train inside your own script or notebook, the service chooses the points.

    import gridhpo

    client = gridhpo.Client("https://hpo.example.org", token)   # an API token (gridhpo admin token create)
    task = client.create("task.yaml")                           # or client.attach(task_id)
    for trial in task.trials():
        with trial:
            for epoch in range(10):
                loss = train_one_epoch(**trial.params)
                trial.report(epoch, loss=loss)
                if trial.should_stop():                         # the task's scheduler stopped it early
                    break
            trial.finish(loss=loss)

The client is a pilot of its task that runs no process: it takes points through the pilot
gateway (``gateway/``, with the task's pilot token), reports the same events a pilot does,
and sends heartbeats from a thread while the block runs. An exception inside ``with trial``
records the point as failed with the exception's message (and is raised on). Standard library
only: importing it pulls in neither the service's nor the optimisers' dependencies.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import traceback
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from gridhpo.errors import ConfigError, GridHPOError, MessageError
from gridhpo.evaluation.heartbeat import Heartbeat
from gridhpo.evaluation.outputs import MAX_MESSAGE_CHARS, metric_data, result_data, truncate
from gridhpo.evaluation.settings import AttemptSettings
from gridhpo.protocol.auth import split_credential
from gridhpo.protocol.events import (
    ENDING_TYPES,
    FailedData,
    HeartbeatData,
    InterruptedData,
    Payload,
    StartedData,
)
from gridhpo.protocol.httptransport import PATIENCE, HttpBroker, HttpClient
from gridhpo.protocol.messages import (
    Event,
    PointMessage,
    TaskEnd,
    UnusablePoint,
    control_queue,
    events_queue,
    message_kind,
    parse_control,
    parse_point,
    parse_task_end,
    points_queue,
)

log = logging.getLogger(__name__)

API = "/api/v1/tasks"


class TaskEndedError(GridHPOError):
    """The task has ended (finished, failed or cancelled): it has no more points to give."""


class TrialError(GridHPOError):
    """A trial used wrongly (finished twice, a result without the objective's metric)."""


class Client:
    """A user of the service, by their API token (default: ``GRIDHPO_API_TOKEN``)."""

    def __init__(self, server: str, token: str | None = None, *, cafile: str | None = None,
                 patience: float = PATIENCE) -> None:
        token = token or os.environ.get("GRIDHPO_API_TOKEN")
        if not token:
            raise ConfigError("gridhpo.Client needs an API token (the token argument or GRIDHPO_API_TOKEN)")
        self.server = server
        self._cafile = cafile
        self._patience = patience
        self._http = HttpClient(server, token, patience=patience, cafile=cafile)

    def create(self, task: Mapping[str, Any] | str | Path, name: str | None = None) -> Task:
        """Submit a task (a mapping as in a task file, or a task file's path) and attach to it."""
        spec = dict(task) if isinstance(task, Mapping) else _read_task_file(Path(task))
        answer = self._http.request("POST", API, {"task": spec, "name": name})
        return self.attach(int(answer["id"]))

    def attach(self, task_id: int, pilot_token: str | None = None) -> Task:
        """An existing task of yours (its pilot token is fetched unless given)."""
        if pilot_token is None:
            answer = self._http.request("POST", f"{API}/{task_id}/token", {"revoke": False, "expires": None})
            pilot_token = str(answer["token"])
        return Task(self.server, task_id, pilot_token, cafile=self._cafile, patience=self._patience)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_task_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a task file is a mapping, not {type(data).__name__}")
    return data


class Task:
    """A task this process evaluates points of, one trial at a time."""

    def __init__(self, server: str, task_id: int, pilot_token: str, *, cafile: str | None = None,
                 patience: float = PATIENCE, site: str = "client") -> None:
        self.id = task_id
        self.site = site
        self.pilot_id = f"client-{uuid.uuid4().hex[:12]}"
        self.broker = HttpBroker(server, task_id, pilot_token, patience=patience, cafile=cafile)
        # TOKEN.KEY (`gridhpo token`): a trial runs only points the steering signed with KEY
        token, verifier = split_credential(pilot_token)
        self.broker.gate.trust(verifier, task_id)
        self.token = token or pilot_token
        self.ended: TaskEnd | None = None

    def trial(self) -> Trial:
        """The next point to evaluate, waiting for it as long as it takes; ``TaskEndedError``
        once the task has ended."""
        queue = points_queue(self.id, self.token)
        while self.ended is None:
            for d in self.broker.drain(queue, 1):
                if message_kind(d.body) == TaskEnd.kind:
                    d.requeue()  # for the task's other pilots
                    self.ended = parse_task_end(d.body)
                    break
                try:
                    msg = parse_point(d.body)
                except UnusablePoint as exc:  # its settings are out of range: it fails, the next one comes
                    self._failed(exc.task_id, exc.point_id, exc.attempt, str(exc))
                    d.ack()
                    continue
                except MessageError as exc:
                    d.dead_letter(f"malformed point message for task {self.id}: {exc}")
                    continue
                try:
                    trial = Trial(self, msg)
                except MessageError as exc:  # settings out of range: the point fails, the next one comes
                    self._failed(msg.task_id, msg.point_id, msg.attempt, str(exc))
                    d.ack()
                    continue
                trial.send(StartedData(host=socket.gethostname()))
                d.ack()
                return trial
        raise TaskEndedError(f"task {self.id} {self.ended.state}" + (f": {self.ended.reason}" if self.ended.reason
                                                                     else ""))

    def _failed(self, task_id: int, point_id: int, attempt: int, reason: str) -> None:
        ev = Event.of(FailedData(reason=reason), task_id=task_id, point_id=point_id, attempt=attempt,
                      pilot_id=self.pilot_id, site=self.site, auth=self.token)
        self.broker.publish(events_queue(task_id), ev.to_json())

    def trials(self) -> Iterator[Trial]:
        """Trial after trial until the task ends (use each in a ``with`` block)."""
        while True:
            try:
                yield self.trial()
            except TaskEndedError:
                return

    def close(self) -> None:
        self.broker.close()


class Trial:
    """One attempt at one point: ``params``, ``report``, ``should_stop``, ``finish``."""

    def __init__(self, task: Task, msg: PointMessage) -> None:
        self.task = task
        self.msg = msg
        self.params: dict[str, Any] = dict(msg.params)
        self.number = msg.number
        self.settings = AttemptSettings.typed(msg.evaluation, msg.objective)
        self.decision: str | None = None  # stop or pause, once the steering decided so
        self._reason = ""
        self.ended = False
        self._seq = 0
        self._beat = Heartbeat(lambda: self.send(HeartbeatData()), self.settings.heartbeat,
                               name=f"trial-heartbeat-{msg.number}").start()

    def send(self, payload: Payload) -> None:
        if payload.TYPE in ENDING_TYPES:
            self._beat.stop()
            self.ended = True
        ev = Event.of(payload, task_id=self.msg.task_id, point_id=self.msg.point_id, attempt=self.msg.attempt,
                      pilot_id=self.task.pilot_id, site=self.task.site, auth=self.task.token)
        self.task.broker.publish(events_queue(self.msg.task_id), ev.to_json())

    def report(self, step: float, **metrics: Any) -> None:
        """Intermediate metrics at ``step`` (an epoch, say): what early stopping judges."""
        data = metric_data(self._seq, json.dumps({**metrics, "step": step}), f"trial {self.number}")
        if data is None:
            raise TrialError(f"trial {self.number}: report({step!r}, ...) is not a JSON object of metrics")
        self._seq += 1
        self.send(data)

    def should_stop(self) -> bool:
        """True once the task's scheduler has decided to stop or pause this trial: save what
        you need, leave the block (``finish`` is not needed then)."""
        queue = control_queue(self.task.id, self.task.pilot_id)
        while self.decision is None and (d := self.task.broker.get(queue)) is not None:
            try:
                c = parse_control(d.body)
            except MessageError as exc:
                log.warning("trial %d: control message ignored: %s", self.number, exc)
                continue
            if (c.task_id, c.point_id, c.attempt) == (self.msg.task_id, self.msg.point_id, self.msg.attempt):
                self.decision = c.action
                self._reason = c.reason or c.action
        return self.decision is not None

    def finish(self, **metrics: Any) -> None:
        """The result: the objective's metric (the task's ``objective.metric``) and any others."""
        if self.ended:
            raise TrialError(f"trial {self.number} has ended already")
        data, reason = result_data(dict(metrics), self.settings.metric, "trial.finish")
        if data is None:
            self.send(FailedData(reason=reason))
            raise TrialError(f"trial {self.number}: {reason}")
        self.send(data)

    def __enter__(self) -> Trial:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.ended:
                return
            if exc is not None:
                reason = truncate(f"{exc_type.__name__ if exc_type else 'error'}: {exc}", MAX_MESSAGE_CHARS, "reason")
                text = "".join(traceback.format_exception(exc_type, exc, tb))
                self.send(FailedData(reason=reason, stderr=text[-4000:]))
            elif self.decision is not None:
                self.send(InterruptedData(reason=self._reason, decision=self.decision))
            else:
                self.send(FailedData(reason="the trial's block ended without trial.finish()"))
        finally:
            self._beat.stop()
