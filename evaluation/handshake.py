"""What a pilot learns from the steering about itself, rather than about a point.

- Its token: before it takes points, a pilot says ``Hello`` on its task's events queue,
  presenting its token as events do, and waits (at most ``hello_timeout``) for the steering's
  ``HelloReply`` on its control queue. Refused (wrong, replaced or expired token), it says why
  and exits with ``EXIT_REFUSED``. Without an answer (no steering running yet) it takes points
  anyway; a refusal that comes later, or one the steering sends when it refuses one of the
  pilot's events (a token revoked while it runs), stops it the same way, also in the middle
  of an evaluation.
- The task's end: the steering leaves a ``TaskEnd`` marker as the last message of the task's
  points queue. A pilot that takes it gives it back (so every pilot sees it, also one started
  later) and exits with ``EXIT_TASK_ENDED``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gridhpo.errors import MessageError
from gridhpo.protocol import Broker, control_queue, events_queue
from gridhpo.protocol.auth import key_id
from gridhpo.protocol.broker import Delivery
from gridhpo.protocol.messages import (
    Hello,
    HelloReply,
    TaskEnd,
    message_kind,
    parse_control,
    parse_hello_reply,
    parse_task_end,
)

log = logging.getLogger(__name__)

# a pilot's exit status, by why it exited
EXIT_TASK_ENDED = 0  # like every other normal end: --max-points, --idle-timeout, walltime, a signal
EXIT_REFUSED = 3  # the steering refused its token: wrong, replaced (gridhpo token --revoke) or expired

Stop = Callable[[str, int], None]  # the pilot stops with this reason and exit status


class Handshake:
    def __init__(self, broker: Broker, task_id: int, pilot_id: str, token: str | None, stop: Stop) -> None:
        self.broker = broker
        self.task_id = task_id
        self.pilot_id = pilot_id
        self.token = token or ""
        self._stop = stop
        self.hello_id = ""
        self.answered = False
        self._last_poll = 0.0

    # ------------------------------------------------------------------ token

    def hello(self, site: str, host: str, timeout: float, stopped: threading.Event) -> None:
        """Announce this pilot and wait for the steering's verdict on its token."""
        msg = Hello(task_id=self.task_id, pilot_id=self.pilot_id, site=site, host=host, auth=self.token)
        self.hello_id = msg.hello_id
        self.broker.publish(events_queue(self.task_id), msg.to_json())
        deadline = time.monotonic() + timeout
        while not self.answered and not stopped.is_set() and time.monotonic() < deadline:
            self.poll(force=True)
            if not self.answered:
                stopped.wait(0.05)
        if not self.answered and not stopped.is_set():
            log.warning("pilot %s: no answer from the steering in %gs (is it running?); taking points anyway",
                        self.pilot_id, timeout)

    def poll(self, force: bool = False) -> None:
        """Read the control queue while no evaluation runs (every half second): verdicts are
        acted on, decisions about points no longer running here are dropped."""
        now = time.monotonic()
        if not force and now - self._last_poll < 0.5:
            return
        self._last_poll = now
        while (d := self.broker.get(control_queue(self.task_id, self.pilot_id))) is not None:
            if self.takes(d):
                continue
            try:
                parse_control(d.body)
            except MessageError as exc:
                d.dead_letter(f"malformed control message for pilot {self.pilot_id}: {exc}")
                continue
            d.ack()
            log.info("control message for an attempt no longer running here: ignored")

    def takes(self, delivery: Delivery) -> bool:
        """True if ``delivery`` (from the control queue) is a verdict on a token, handled here."""
        if message_kind(delivery.body) != HelloReply.kind:
            return False
        try:
            reply = parse_hello_reply(delivery.body)
        except MessageError as exc:
            delivery.dead_letter(f"malformed hello reply for pilot {self.pilot_id}: {exc}")
            return True
        delivery.ack()
        # a verdict on another token or an earlier hello (a pilot of the same id before this one)
        # (a reply to this hello names no token when the steering found none proving it)
        ours = reply.task_id == self.task_id and (reply.token_key == key_id(self.token)
                                                  or (bool(reply.hello_id) and reply.hello_id == self.hello_id))
        if not ours or not (reply.hello_id == self.hello_id or (not reply.accepted and not reply.hello_id)):
            log.info("a verdict for another pilot of id %s or another token: ignored", self.pilot_id)
            return True
        self.answered = True
        if reply.accepted:
            log.info("pilot %s: the steering accepted its token for task %d", self.pilot_id, self.task_id)
        else:
            log.error("pilot %s: the steering refused its token for task %d: %s", self.pilot_id, self.task_id,
                      reply.reason)
            self._stop(f"token refused by the steering: {reply.reason}", EXIT_REFUSED)
        return True

    # ------------------------------------------------------------------ the task's end

    @staticmethod
    def is_task_end(delivery: Delivery) -> bool:
        return message_kind(delivery.body) == TaskEnd.kind

    def task_ended(self, delivery: Delivery) -> None:
        """The task's end marker: given back to the queue for the other pilots; this one stops."""
        try:
            end = parse_task_end(delivery.body)
        except MessageError as exc:
            delivery.dead_letter(f"malformed task-end message for task {self.task_id}: {exc}")
            return
        if end.task_id != self.task_id:
            delivery.dead_letter(f"the end of task {end.task_id} on task {self.task_id}'s queue")
            return
        delivery.requeue()
        log.info("task %d has ended (%s%s)", end.task_id, end.state, f": {end.reason}" if end.reason else "")
        self._stop(f"task {end.task_id} {end.state}" + (f" ({end.reason})" if end.reason else ""), EXIT_TASK_ENDED)
