"""Attempt: one evaluation of one point by a pilot, from its work directory to the event that
ends it (finished, failed or interrupted).

It writes the work directory (``workdirs``), starts the runtime, sends heartbeats from a
thread of its own (``heartbeat``), forwards new lines of metrics.jsonl, uploads checkpoints,
obeys the steering's control messages, the pilot's stop and the evaluation's timeout, and reads
output.json at the end (``outputs``). What it reports goes out through its Pilot.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from gridhpo.checkpoints.archive import CheckpointTooLargeError
from gridhpo.errors import EvaluationError, GridHPOError, MessageError
from gridhpo.evaluation.heartbeat import Heartbeat
from gridhpo.evaluation.outputs import MetricsTail, OutputError, metric_data, read_output
from gridhpo.evaluation.runtimes import Handle, Job
from gridhpo.evaluation.settings import AttemptSettings
from gridhpo.protocol import ControlMessage, PointMessage, control_queue, parse_control
from gridhpo.protocol.events import CheckpointData, HeartbeatData, InterruptedData

if TYPE_CHECKING:
    from gridhpo.evaluation.pilot import Pilot

log = logging.getLogger(__name__)


class Attempt:
    def __init__(self, pilot: Pilot, msg: PointMessage) -> None:
        self.pilot = pilot
        self.msg = msg
        self.settings = AttemptSettings.typed(msg.evaluation, msg.objective)

    def run(self) -> None:
        pilot, msg, settings = self.pilot, self.msg, self.settings
        t0 = time.monotonic()
        try:
            job = pilot.workdirs.prepare(msg, settings)
        except OSError as exc:
            # a full disk (ENOSPC) or an unwritable work root is this site's problem, not the point's
            pilot.site_cannot_run(msg, EvaluationError(f"cannot prepare a work directory in {pilot.workroot}: "
                                                       f"{exc.strerror or exc}"))
            return
        try:
            pilot.checkpoints.begin(msg, job.workdir, lambda data: pilot.send(msg, CheckpointData(**data)))
            runtime = pilot.runtime(msg.evaluation)
            handle = runtime.start(job)
        except (GridHPOError, OSError) as exc:
            # the site cannot run it (a runtime, a store, a full disk while restoring a
            # checkpoint): not the point's fault, so it goes back to the queue
            pilot.site_cannot_run(msg, exc if isinstance(exc, GridHPOError) else EvaluationError(str(exc)))
            pilot.workdirs.ended(job, finished=False, keep=pilot.cfg.keep_workdirs)
            return
        beat = pilot.beat = Heartbeat(lambda: pilot.send(msg, HeartbeatData()), settings.heartbeat,
                                      name=f"heartbeat-{msg.number}").start()
        try:
            outcome = self._watch(job, handle)
        except OutputError as exc:  # metrics.jsonl that is not a regular file of the work directory
            handle.stop(settings.grace)
            outcome = pilot.fail(msg, str(exc), handle)
        finally:
            beat.stop()
            pilot.checkpoints.end()
        if outcome != "interrupted":
            # evaluation.files.meta/metrics, per attempt; not when the pilot stopped the evaluation:
            # it is then at its walltime or told to stop, with no time for a large upload
            pilot.checkpoints.keep_artifacts(msg, job.workdir)
        try:
            handle.cleanup()
        except GridHPOError as exc:
            log.warning("cleanup after point %d failed: %s", msg.number, exc)
        pilot.stats.record(time.monotonic() - t0)
        pilot.workdirs.ended(job, finished=outcome == "finished", keep=pilot.cfg.keep_workdirs)

    def _watch(self, job: Job, handle: Handle) -> str:
        """Watch the running evaluation until it ends or is stopped; returns the outcome sent.
        Each iteration does bounded work (one bounded read of metrics.jsonl); heartbeats go
        out from their own thread meanwhile. Raises OutputError for an unreadable metrics.jsonl."""
        metrics = MetricsTail(job.workdir)
        started = time.monotonic()
        while True:
            code = handle.poll()
            self._forward_metrics(metrics, to_end=code is not None)
            # a batch system signals the whole job at once: an evaluation that died with its pilot's
            # SIGTERM was interrupted, not failed (the pilot's own handler may run a moment later)
            if code is not None and (code == 0 or not self.pilot.stop_requested.wait(0.5)):
                return self._conclude(job, handle, code)
            outcome = self._ended_early(job, handle, metrics, started)
            if outcome is not None:
                return outcome
            if not metrics.more:
                self.pilot.stop_requested.wait(0.1)

    def _ended_early(self, job: Job, handle: Handle, metrics: MetricsTail, started: float) -> str | None:
        """One look at what ends a running evaluation early: a checkpoint over its limit, the
        steering's decision, the pilot's stop or walltime, the timeout; the outcome sent, or None."""
        pilot, msg, grace = self.pilot, self.msg, self.settings.grace
        if pilot.checkpoints.current is not None:
            try:
                pilot.checkpoints.current.tick()
            except CheckpointTooLargeError as exc:
                handle.stop(grace)
                pilot.checkpoints.end()
                return pilot.fail(msg, str(exc), handle)
        now = time.monotonic()
        control = self._control(now)
        if control is not None:
            # the steering's scheduler decided: stop gracefully (the evaluation saves its
            # checkpoint on SIGTERM); send() uploads it before reporting; the pilot goes on
            handle.stop(grace)
            self._forward_metrics(metrics, to_end=True)
            pilot.send(msg, InterruptedData(reason=control.reason or control.action, decision=control.action))
            return "interrupted"
        if pilot.stop_requested.is_set() or pilot.remaining() <= grace + 2.0:
            return self._interrupt(job, handle, metrics)
        timeout = self.settings.timeout
        if timeout is not None and now - started > timeout:
            handle.stop(grace)
            return pilot.fail(msg, f"evaluation.timeout of {timeout:g}s exceeded", handle)
        return None

    def _interrupt(self, job: Job, handle: Handle, metrics: MetricsTail) -> str:
        """The pilot stops (a signal, or its walltime is near): the point goes back to the queue,
        unless the evaluation had written its output before it was stopped (it was finishing
        anyway): then that is its result, and no retry spends a walltime slot to compute it
        again. An output written after the SIGTERM is not one: an evaluation may write its
        current loss when it is stopped (examples/pbt), which is no final result."""
        pilot = self.pilot
        signalled = pilot.stop_requested.is_set()
        reason = pilot.stop_reason or "pilot walltime reached"
        name = self.msg.evaluation.files.output
        done = self._output_before_stop(job, name)
        code = handle.stop(self.settings.grace)
        self._forward_metrics(metrics, to_end=True)
        if done is not None and code == 0:
            log.info("point %d had written its output as the pilot stopped it (%s): its result is reported",
                     self.msg.number, reason)
            outcome = pilot.report_output(self.msg, done, self.settings.metric, name, handle.output_tail)
        else:
            pilot.send(self.msg, InterruptedData(reason=reason, cause="signal" if signalled else "walltime"))
            pilot.stats.interrupted += 1
            outcome = "interrupted"
        if not pilot.stop_requested.is_set():
            pilot.request_stop(reason)  # no next point: the walltime is near
        return outcome

    @staticmethod
    def _output_before_stop(job: Job, name: str) -> dict[str, Any] | None:
        """The output file as it is before the stop, read once: the result if the evaluation then
        exits 0 (None when there is none, or one still being written)."""
        try:
            return read_output(job.workdir, name)
        except OutputError:
            return None

    def _control(self, now: float) -> ControlMessage | None:
        """A stop or pause for the running attempt, looked for every half second."""
        pilot, msg = self.pilot, self.msg
        if now - pilot.last_control < 0.5:
            return None
        pilot.last_control = now
        while (d := pilot.broker.get(control_queue(pilot.cfg.task_id, pilot.cfg.pilot_id))) is not None:
            if pilot.handshake.takes(d):
                continue  # a refusal stops this pilot: stop_requested is set
            try:
                c = parse_control(d.body)
            except MessageError as exc:
                d.dead_letter(f"malformed control message for pilot {pilot.cfg.pilot_id}: {exc}")
                continue
            d.ack()
            if (c.task_id, c.point_id, c.attempt) == (msg.task_id, msg.point_id, msg.attempt):
                log.info("point %d attempt %d: %s (%s)", msg.number, msg.attempt, c.action, c.reason)
                return c
            log.info("control message for an attempt no longer running here: ignored")
        return None

    def _forward_metrics(self, metrics: MetricsTail, to_end: bool) -> None:
        """Forward new lines of metrics.jsonl: one bounded read (thinned to a rate, see
        ``MetricsTail.take``), or all reads once ``to_end`` (the evaluation has ended)."""
        msg = self.msg
        while True:
            kept, read = metrics.take()
            if len(kept) < read:
                log.info("point %d: %d metric lines at once, %d of them forwarded", msg.number, read, len(kept))
            for seq, line in kept:
                data = metric_data(seq, line, f"point {msg.number}")
                if data is not None:
                    self.pilot.send(msg, data)
            if not (to_end and metrics.more):
                return

    def _conclude(self, job: Job, handle: Handle, code: int) -> str:
        pilot, msg = self.pilot, self.msg
        if code != 0:
            return pilot.fail(msg, f"evaluation exited with code {code}", handle)
        name = msg.evaluation.files.output  # output.json, or the task's name for it (evaluation.files)
        try:
            out = read_output(job.workdir, name)
        except OutputError as exc:
            return pilot.fail(msg, str(exc), handle)
        if out is None:
            return pilot.fail(msg, f"evaluation wrote no {name}", handle)
        return pilot.report_output(msg, out, self.settings.metric, name, handle.output_tail)
