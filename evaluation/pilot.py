"""The pilot: pulls points of one task, runs each in a fresh work directory, reports events.

Each point is one Attempt (evaluation/attempt.py): write input.json and gridhpo.json
(``workdirs``), start the runtime, forward new lines of metrics.jsonl, send a heartbeat every
``evaluation.heartbeat`` seconds from a thread of its own (``heartbeat``), and read output.json
at the end (``outputs``: regular files of the work directory only, bounded). A crashing or
misbehaving evaluation is a failed point with its reason and the last lines of its output; the
pilot carries on. Near its walltime, or on SIGTERM, the pilot stops the running evaluation
gracefully (SIGTERM, grace period, kill), reports the point interrupted so that it is re-queued,
and exits.
"""
from __future__ import annotations

import bisect
import logging
import math
import platform
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from gridhpo.checkpoints.extract import tarfile_is_patched
from gridhpo.errors import GridHPOError, MessageError
from gridhpo.evaluation import environment, runtimes
from gridhpo.evaluation.attempt import Attempt
from gridhpo.evaluation.checkpointing import PilotCheckpoints
from gridhpo.evaluation.handshake import Handshake
from gridhpo.evaluation.heartbeat import Heartbeat
from gridhpo.evaluation.outputs import (
    MAX_MESSAGE_CHARS,
    result_data,
    truncate,
)
from gridhpo.evaluation.runtimes import Handle, Job, Runtime
from gridhpo.evaluation.settings import AttemptSettings
from gridhpo.evaluation.workdirs import KEEP_FAILED, KEEP_FAILED_BYTES, Workdirs
from gridhpo.protocol import (
    Broker,
    Event,
    PointMessage,
    events_queue,
    parse_point,
    points_queue,
)
from gridhpo.protocol.auth import split_credential
from gridhpo.protocol.broker import Delivery, Undecodable
from gridhpo.protocol.evaluation import EvaluationSpec
from gridhpo.protocol.events import (
    ENDING_TYPES,
    EventType,
    FailedData,
    InterruptedData,
    Payload,
    StartedData,
)
from gridhpo.protocol.points import UnusablePoint

log = logging.getLogger(__name__)
INLINE_BATCH = 8  # in-process points a pilot takes at once


@dataclass
class PilotStats:
    finished: int = 0
    failed: int = 0
    interrupted: int = 0
    # seconds each point took, kept sorted (``record``): the pilot reads their median on every
    # loop, and sorting them there cost an in-process objective's pilot more than the point
    durations: list[float] = field(default_factory=list)
    exit_reason: str = ""
    exit_code: int = 0  # see evaluation/handshake.py

    @property
    def evaluated(self) -> int:
        return self.finished + self.failed

    def record(self, seconds: float) -> None:
        bisect.insort(self.durations, seconds)

    @property
    def median_duration(self) -> float:
        d = self.durations
        return d[len(d) // 2] if d else 0.0


@dataclass
class PilotConfig:
    task_id: int
    pilot_id: str = field(default_factory=lambda: f"pilot-{uuid.uuid4().hex[:12]}")
    site: str = "local"
    workroot: Path | None = None
    max_points: int | None = None
    walltime: float | None = None
    idle_timeout: float | None = None
    runtime: str | None = None
    keep_workdirs: bool = False
    keep_failed: int = KEEP_FAILED  # work directories of failed or interrupted attempts kept...
    keep_failed_bytes: int = KEEP_FAILED_BYTES  # ...and their total size at most (oldest removed first)
    store: str | None = None  # checkpoint store URL (--store); else the task file's, else GRIDHPO_STORE
    token: str | None = None  # the task's token (gridhpo/tokens.py)
    hello_timeout: float = 10.0  # how long to wait for the steering's verdict on the token
    poll: float = 0.02


class Pilot:
    def __init__(self, broker: Broker, config: PilotConfig) -> None:
        self.broker = broker
        environment.register_secret(config.token)  # no evaluation gets a variable holding it
        # it runs only what the steering signed for its task (protocol/auth.py)
        token, steering_key = split_credential(config.token)
        broker.gate.trust(steering_key, config.task_id)
        self.cfg = config = replace(config, token=token)
        environment.register_secret(token)
        self.stats = PilotStats()
        self.started = time.monotonic()
        self.stop_requested = threading.Event()
        self.stop_reason = ""
        self.host = socket.gethostname()
        self.workroot = config.workroot or Path.cwd() / "gridhpo-work" / config.pilot_id
        self._runtimes: dict[str, Runtime] = {}
        self._inline = False  # in-process objectives: points come in batches
        self._outbox: list[tuple[str, dict[str, Any]]] | None = None
        self.last_control = 0.0  # when the control queue was last read (evaluation/attempt.py)
        self.checkpoints = PilotCheckpoints(config.store)
        self.handshake = Handshake(broker, config.task_id, config.pilot_id, config.token, self._stop_with)
        self.workdirs = Workdirs(self.workroot, config.pilot_id, config.site, config.keep_failed,
                                 config.keep_failed_bytes)
        self.beat: Heartbeat | None = None  # the running attempt's
        self.per_job: int | None = None  # the task's evaluation.points_per_job (phpo's maxPointsPerEvaluationJob)

    # ------------------------------------------------------------------ control

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stop_requested.set()

    def _stop_with(self, reason: str, code: int) -> None:
        self.stats.exit_code = code
        self.request_stop(reason)

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.warning("pilot %s got %s: stopping", self.cfg.pilot_id, signal.Signals(signum).name)
            self.request_stop(f"pilot received {signal.Signals(signum).name}")

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def remaining(self) -> float:
        if self.cfg.walltime is None:
            return math.inf
        return self.cfg.walltime - (time.monotonic() - self.started)

    # ------------------------------------------------------------------ main loop

    def _exit_reason(self) -> str:
        if self.stop_requested.is_set():
            return self.stop_reason
        if self.cfg.max_points is not None and self.stats.evaluated >= self.cfg.max_points:
            return f"evaluated {self.stats.evaluated} points (--max-points)"
        if self.per_job is not None and self.stats.evaluated >= self.per_job:
            return f"evaluated {self.stats.evaluated} points (evaluation.points_per_job)"
        if self.remaining() <= max(self.stats.median_duration, 1.0):
            return "not enough walltime left for another point"
        return ""

    def _receive(self) -> list[Delivery]:
        """One point at a time, pulled only when this pilot is free, so a point never waits
        behind another pilot's long evaluation; in-process objectives, which take
        microseconds, come in batches from a consumer."""
        queue = points_queue(self.cfg.task_id, self.cfg.token)
        if self._inline:
            left = INLINE_BATCH if self.cfg.max_points is None else self.cfg.max_points - self.stats.evaluated
            return self.broker.drain(queue, max_messages=max(1, min(INLINE_BATCH, left)), timeout=self.cfg.poll)
        d = self.broker.get(queue)
        return [] if d is None else [d]

    def _accept(self, delivery: Delivery) -> PointMessage | None:
        if self.handshake.is_task_end(delivery):
            self.handshake.task_ended(delivery)
            return None
        try:
            if isinstance(delivery.body, Undecodable):
                raise MessageError(delivery.body.reason)
            msg = parse_point(delivery.body)
        except UnusablePoint as exc:
            self._unusable(delivery, exc)
            return None
        except MessageError as exc:
            delivery.dead_letter(f"malformed point message for task {self.cfg.task_id}: {exc}")
            return None
        if msg.task_id != self.cfg.task_id:
            delivery.dead_letter(f"a point of task {msg.task_id} on task {self.cfg.task_id}'s queue")
            return None
        return msg

    def _unusable(self, delivery: Delivery, exc: UnusablePoint) -> None:
        """A point of ours whose evaluation section this pilot cannot use: that attempt fails
        with the reason (naming the field), rather than vanishing into the dead letters."""
        if exc.task_id != self.cfg.task_id:
            delivery.dead_letter(f"a point of task {exc.task_id} on task {self.cfg.task_id}'s queue")
            return
        log.warning("point %d attempt %d failed: %s", exc.number, exc.attempt, exc)
        self._publish(Event.of(FailedData(reason=truncate(str(exc), MAX_MESSAGE_CHARS, "reason"), stderr=""),
                               task_id=exc.task_id, point_id=exc.point_id, attempt=exc.attempt,
                               pilot_id=self.cfg.pilot_id, site=self.cfg.site, auth=self.cfg.token or ""), True)
        delivery.ack()
        self.stats.failed += 1

    def _handle(self, deliveries: list[Delivery]) -> None:
        accepted = [(d, m) for d in deliveries if (m := self._accept(d)) is not None]
        inline: list[tuple[Delivery, PointMessage]] = []
        others: list[tuple[Delivery, PointMessage]] = []
        for d, m in accepted:
            (inline if runtimes.choose(m.evaluation, self.cfg.runtime) == "python" else others).append((d, m))
        if inline:
            # an in-process objective takes microseconds: its result is its start, the results
            # of a batch go out together, and each message is acknowledged only once its
            # result is sent
            self._inline = True
            self._outbox = []
            try:
                for _, msg in inline:
                    self.evaluate_inline(msg)
                self.broker.publish_many(self._outbox, confirm=False)
            finally:
                self._outbox = None
            for d, _ in inline:
                d.ack()
        for d, msg in others:
            self.send(msg, StartedData(host=self.host))
            d.ack()
            self.evaluate(msg)

    def run(self) -> PilotStats:
        log.info("pilot %s at %s serving task %d (walltime %s)", self.cfg.pilot_id, self.cfg.site,
                 self.cfg.task_id, "none" if self.cfg.walltime is None else f"{self.cfg.walltime:.0f}s")
        if not tarfile_is_patched():
            log.warning("Python %s parses tar headers in quadratic time (CVE-2024-6232): a checkpoint planted in "
                        "the store can hold this pilot; run pilots on Python >= 3.11.10, 3.12.6 or 3.13",
                        platform.python_version())
        self.workroot.mkdir(parents=True, exist_ok=True)
        try:
            # never waiting into the walltime's last second, where it would exit anyway
            wait = min(self.cfg.hello_timeout, max(0.0, self.remaining() - 1.0))
            self.handshake.hello(self.cfg.site, self.host, wait, self.stop_requested)
            idle_since = time.monotonic()
            while True:
                reason = self._exit_reason()
                if reason:
                    self.stats.exit_reason = reason
                    break
                deliveries = self._receive()
                if not deliveries:
                    if self.cfg.idle_timeout is not None and time.monotonic() - idle_since > self.cfg.idle_timeout:
                        self.stats.exit_reason = f"no point for {self.cfg.idle_timeout:g}s (--idle-timeout)"
                        break
                    self.handshake.poll()
                    if not self._inline:
                        self.stop_requested.wait(self.cfg.poll)
                    continue
                self._handle(deliveries)
                idle_since = time.monotonic()
        finally:
            for rt in self._runtimes.values():
                rt.close()
            self.checkpoints.close()
        log.info("pilot %s exits: %s (%d finished, %d failed, %d interrupted)", self.cfg.pilot_id,
                 self.stats.exit_reason, self.stats.finished, self.stats.failed, self.stats.interrupted)
        return self.stats

    def send(self, msg: PointMessage, payload: Payload, confirm: bool = True) -> None:
        cp = self.checkpoints.current
        if cp is not None and cp.msg.point_id == msg.point_id and (
                payload.TYPE == EventType.INTERRUPTED
                or (payload.TYPE == EventType.FINISHED and msg.budget is not None and msg.budget.scheduler == "pbt")):
            # the last upload happens before the stop is reported: the retry, maybe on
            # another pilot a moment later, must find it (covers every way of stopping); a
            # population member's segment ends "finished" and its next segment starts from it
            cp.final()
        if payload.TYPE in ENDING_TYPES and self.beat is not None:
            self.beat.stop()  # no heartbeat after the attempt's last event
        self._publish(Event.of(payload, task_id=msg.task_id, point_id=msg.point_id, attempt=msg.attempt,
                               pilot_id=self.cfg.pilot_id, site=self.cfg.site, auth=self.cfg.token or ""), confirm)

    def _publish(self, ev: Event, confirm: bool) -> None:
        if self._outbox is not None and not confirm:
            self._outbox.append((events_queue(ev.task_id), ev.to_json()))
        else:
            self.broker.publish(events_queue(ev.task_id), ev.to_json(), confirm)

    # ------------------------------------------------------------------ one attempt

    def runtime(self, evaluation: EvaluationSpec) -> Runtime:
        name = runtimes.choose(evaluation, self.cfg.runtime)
        if name not in self._runtimes:
            self._runtimes[name] = runtimes.get(name)()
        return self._runtimes[name]

    def evaluate(self, msg: PointMessage) -> None:
        """Run one point in a fresh work directory and report how it ended (evaluation/attempt.py)."""
        self.per_job = msg.evaluation.points_per_job
        Attempt(self, msg).run()

    def report_output(self, msg: PointMessage, out: dict[str, Any], metric: str, source: str,
                       tail: Callable[[int], str], confirm: bool = True) -> str:
        """Send the result an evaluation produced (output.json, or an in-process return value)."""
        data, reason = result_data(out, metric, source)
        if data is None:
            return self.fail(msg, reason, tail, confirm)
        self.send(msg, data, confirm)
        self.stats.finished += 1
        return "finished"

    def fail(self, msg: PointMessage, reason: str, tail: Handle | Callable[[int], str], confirm: bool = True) -> str:
        text = (tail.output_tail if isinstance(tail, Handle) else tail)(20)
        log.warning("point %d attempt %d failed: %s", msg.number, msg.attempt, reason)
        self.send(msg, FailedData(reason=truncate(reason, MAX_MESSAGE_CHARS, "reason"), stderr=text[-4000:]), confirm)
        self.stats.failed += 1
        return "failed"

    def site_cannot_run(self, msg: PointMessage, exc: GridHPOError) -> None:
        """Not the point's fault: it goes back to the queue, and this pilot stops."""
        log.error("pilot %s cannot run point %d here: %s", self.cfg.pilot_id, msg.number, exc)
        self.send(msg, InterruptedData(reason=f"site cannot run it: {exc}", cause="site"))
        self.stats.interrupted += 1
        self.request_stop(f"runtime unusable: {exc}")

    def evaluate_inline(self, msg: PointMessage) -> None:
        """An in-process objective: no work directory, no process, no checkpoint; the point's
        result is sent as soon as the function returns."""
        runtime = self.runtime(msg.evaluation)
        t0 = time.monotonic()
        settings = AttemptSettings.typed(msg.evaluation, msg.objective)
        job = Job(workdir=Path(), command=None, python=settings.python, source_dir=settings.source_dir,
                  params=msg.params, metric=settings.metric, in_memory=True)
        try:
            handle = runtime.start(job)
        except GridHPOError as exc:
            self.site_cannot_run(msg, exc)
            return
        # no publisher confirm: the point's message is acknowledged only after this, and a result
        # lost with the broker leaves the point queued, which the steering finds and sends again
        out = handle.output()
        if out is None:
            last = handle.output_tail(1).strip()
            self.fail(msg, last or "the objective failed", handle, confirm=False)
        else:
            self.report_output(msg, out, settings.metric, str(settings.python), lambda n: "", confirm=False)
        self.stats.record(time.monotonic() - t0)
