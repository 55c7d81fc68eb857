"""What a pilot learns from the steering about itself, rather than about a point.

- The task's end: the steering leaves a ``TaskEnd`` marker as the last message of the task's
  points queue. A pilot that takes it gives it back (so every pilot sees it, also one started
  later) and exits with ``EXIT_TASK_ENDED``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from gridhpo.errors import MessageError
from gridhpo.protocol.broker import Delivery
from gridhpo.protocol.messages import TaskEnd, message_kind, parse_task_end

log = logging.getLogger(__name__)

# a pilot's exit status, by why it exited
EXIT_TASK_ENDED = 0  # like every other normal end: --max-points, --idle-timeout, walltime, a signal

Stop = Callable[[str, int], None]  # the pilot stops with this reason and exit status


class Handshake:
    def __init__(self, task_id: int, stop: Stop) -> None:
        self.task_id = task_id
        self._stop = stop

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
