"""The steering's answers to pilots about themselves: is their token good?

A pilot says ``Hello`` on its task's events queue before it takes points, presenting its
token like an event; the steering answers on the pilot's control queue with a ``HelloReply``,
accepted or refused with the reason (wrong, replaced or expired token), judged on the
bookkeeping's token of the moment (the round refreshes its tasks first, so a pilot started
right after `gridhpo token --revoke` is refused). A pilot whose event is refused for its token
is told the same, unasked, so that a pilot holding a token revoked while it runs learns it and
exits; when that token was good before (replaced or expired in this steering's lifetime), the
point it was running is handed to the queue again at once (``revoked``), not after
``lost_after``.

Neither answer goes to a token that was never good without a bound: each refusal creates a
control queue named after a pilot id the sender chose, so refusals of unknown tokens are
limited to ``REFUSALS_PER_MINUTE`` per task, and unasked ones are sent only for tokens that
were once good.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gridhpo.errors import GridHPOError, MessageError
from gridhpo.protocol import Broker, Event, control_queue, events_queue
from gridhpo.protocol.auth import key_id, proven_token, steering_signer
from gridhpo.protocol.broker import Delivery, Undecodable
from gridhpo.protocol.messages import MAX_MESSAGE_BYTES, Hello, HelloReply, message_kind, parse_hello
from gridhpo.steering.state import TaskState
from gridhpo.tokens import same

log = logging.getLogger(__name__)

REFUSALS_PER_MINUTE = 60  # per task, to tokens never good
NOTICE_EVERY = 5.0  # seconds between unasked refusals to one pilot and token


@dataclass(frozen=True)
class Revoked:
    """A running attempt whose pilot's token was revoked (or expired): re-queue it now."""

    task_id: int
    point_id: int
    attempt: int
    pilot_id: str
    reason: str


class PilotDesk:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        # what pilots act on (points, control, task ends, these replies) is signed by the
        # steering's key; its verifying half reaches pilots with their token (protocol/auth.py)
        broker.gate.sign_with(steering_signer())
        self._old_tokens: dict[int, set[str]] = {}  # tokens replaced while this steering ran
        self._refusals: dict[int, list[float]] = {}  # per task: when tokens never good were refused
        self._noticed: dict[tuple[str, str], float] = {}  # (pilot, token key): when last told
        self._revoked: list[Revoked] = []  # found while parsing a round's events

    @staticmethod
    def split(deliveries: list[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """A round's deliveries: (events, hellos)."""
        events: list[Delivery] = []
        hellos: list[Delivery] = []
        for d in deliveries:
            is_hello = isinstance(d.body, Mapping) and message_kind(d.body) == Hello.kind
            (hellos if is_hello else events).append(d)
        return events, hellos

    def proven(self, body: object, task: TaskState, raw: bytes | str | None = None) -> str:
        """The token of ``task`` (current or replaced while this steering ran) whose code the
        message carries: what the message presents (protocol/auth.py; ``raw``: its text)."""
        return proven_token(body, [task.row.token, *self._old_tokens.get(task.id, ())], raw)

    def token_replaced(self, task_id: int, old: str | None, new: str | None) -> None:
        if old and old != new:
            self._old_tokens.setdefault(task_id, set()).add(old)

    def _once_good(self, task: TaskState, auth: str) -> bool:
        current = task.row.token
        return bool(auth) and ((current is not None and same(auth, current))
                               or any(same(auth, t) for t in self._old_tokens.get(task.id, ())))

    @staticmethod
    def judge(task: TaskState, auth: str, now: float) -> str | None:
        """Why a pilot presenting ``auth`` is refused, or None."""
        if task.row.token is None and auth:
            return "this task has no token: start its pilots without one"  # they would watch the wrong queue
        return task.refuses(auth, now)

    def answer(self, hellos: list[Delivery], tasks: Mapping[int, TaskState]) -> None:
        """Answer each pilot's hello on its control queue; a malformed hello is dead-lettered."""
        now = time.time()
        replies: list[tuple[str, dict[str, Any]]] = []
        answered = []
        for d in hellos:
            try:
                if d.size > MAX_MESSAGE_BYTES or isinstance(d.body, Undecodable):
                    raise MessageError("not a valid message")
                hello = parse_hello(d.body)
                if d.queue != events_queue(hello.task_id):
                    raise MessageError(f"a hello for task {hello.task_id} in {d.queue}")
            except MessageError as exc:
                d.dead_letter(f"malformed hello: {exc}")
                continue
            answered.append(d)
            task = tasks.get(hello.task_id)
            if task is None:
                continue  # ended this round: the pilot finds the end marker in its queue
            hello = replace(hello, auth=self.proven(d.body, task, d.raw))
            reason = self.judge(task, hello.auth, now)
            where = f"pilot {hello.pilot_id} at {hello.site} ({hello.host})"
            if reason is None:
                log.info("task %s: %s accepted", task.row.name, where)
            elif not self._once_good(task, hello.auth) and not self._may_refuse(task.id, now):
                log.warning("task %s: %s refused (%s); too many refusals, not answered", task.row.name, where, reason)
                continue
            else:
                log.warning("task %s: %s refused: %s", task.row.name, where, reason)
            replies.append((control_queue(task.id, hello.pilot_id), HelloReply(
                task_id=task.id, accepted=reason is None, reason=reason or "", hello_id=hello.hello_id,
                token_key=key_id(hello.auth)).to_json()))
        self._send(replies)
        for d in answered:
            d.ack()

    def refused(self, ev: Event, task: TaskState, reason: str, now: float) -> None:
        """An event of ``task`` was refused for its token: its pilot is told so (once in a while),
        and the attempt it runs, if that token was good before, is re-queued."""
        if not self._once_good(task, ev.auth):
            return  # a token never good: its pilot learnt it at its hello
        op = task.open.get(ev.point_id)
        if op is not None and op.state == "running" and op.attempt == ev.attempt and op.pilot_id == ev.pilot_id:
            self._revoked.append(Revoked(task.id, op.id, op.attempt, ev.pilot_id, reason))
        key = (ev.pilot_id, key_id(ev.auth))
        if now - self._noticed.get(key, -NOTICE_EVERY) < NOTICE_EVERY:
            return
        self._noticed[key] = now
        self._send([(control_queue(task.id, ev.pilot_id), HelloReply(
            task_id=task.id, accepted=False, reason=reason, token_key=key_id(ev.auth)).to_json())])

    def take_revoked(self) -> list[Revoked]:
        out, self._revoked = self._revoked, []
        return out

    def _may_refuse(self, task_id: int, now: float) -> bool:
        recent = [t for t in self._refusals.get(task_id, []) if now - t < 60.0]
        self._refusals[task_id] = recent
        if len(recent) >= REFUSALS_PER_MINUTE:
            return False
        recent.append(now)
        return True

    def _send(self, replies: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            self.broker.publish_many(replies)
        except GridHPOError as exc:
            # a pilot without an answer takes points after a while, and is told at its next event
            log.warning("answering %d pilots failed: %s", len(replies), exc)
