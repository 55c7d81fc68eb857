"""The messages of the wire protocol, in one place to import them from.

JSON objects, each with its ``kind`` and the protocol version ``v`` (``PROTOCOL_VERSION``):

- ``point`` (``PointMessage``, steering -> pilots, ``points_queue``): one attempt of one point
  with its parameters, the task's ``EvaluationSpec``, its ``PointObjective`` and, under early
  stopping, its ``ResourceBudget``;
- ``event`` (``Event``, pilot -> steering, ``events_queue``): one of ``EVENT_TYPES``, whose
  ``data`` is the wire form of that type's payload (``gridhpo.protocol.events``);
- ``hello`` (``Hello``, pilot -> steering, ``events_queue``) and ``hello-reply``
  (``HelloReply``, steering -> pilot, ``control_queue``): the verdict on a pilot's token;
- ``control`` (``ControlMessage``, steering -> pilot, ``control_queue``): stop or pause one
  running attempt (``ControlAction``);
- ``task-end`` (``TaskEnd``, steering -> pilots, last on ``points_queue``): the task ended
  (``TaskEndState``).

Every parser raises only ``MessageError``, naming the field it refused; ``wire`` holds the
envelope, the limits and the decoding every message shares.
"""
from __future__ import annotations

from gridhpo.protocol.evaluation import CheckpointSpec, EvaluationSpec, PointObjective, ResourceBudget, Resources
from gridhpo.protocol.events import (
    ENDING_TYPES,
    EVENT_TYPES,
    INTERRUPT_CAUSES,
    PAYLOADS,
    CheckpointData,
    Event,
    EventType,
    FailedData,
    FinishedData,
    HeartbeatData,
    InterruptedData,
    MetricData,
    Payload,
    StartedData,
    parse_event,
)
from gridhpo.protocol.points import (
    CONTROL_ACTIONS,
    TASK_END_STATES,
    ControlAction,
    ControlMessage,
    Hello,
    HelloReply,
    PointMessage,
    TaskEnd,
    TaskEndState,
    UnusablePoint,
    control_queue,
    events_queue,
    parse_control,
    parse_hello,
    parse_hello_reply,
    parse_point,
    parse_task_end,
    points_queue,
)
from gridhpo.protocol.wire import (
    DEAD_LETTER_QUEUE,
    JSON_CONTENT_TYPE,
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    SECRET_FIELDS,
    Undecodable,
    decode_body,
    json_depth,
    message_kind,
    without_secrets,
)

__all__ = [
    "CONTROL_ACTIONS", "DEAD_LETTER_QUEUE", "ENDING_TYPES", "EVENT_TYPES", "INTERRUPT_CAUSES", "JSON_CONTENT_TYPE",
    "MAX_DEPTH", "MAX_MESSAGE_BYTES", "PAYLOADS", "PROTOCOL_VERSION", "SECRET_FIELDS", "TASK_END_STATES",
    "CheckpointData", "CheckpointSpec", "ControlAction", "ControlMessage", "EvaluationSpec", "Event", "EventType",
    "FailedData", "FinishedData", "HeartbeatData", "Hello", "HelloReply", "InterruptedData", "MetricData",
    "Payload", "PointMessage", "PointObjective", "ResourceBudget", "Resources", "StartedData", "TaskEnd",
    "TaskEndState", "Undecodable", "UnusablePoint", "control_queue", "decode_body", "events_queue", "json_depth",
    "message_kind", "parse_control", "parse_event", "parse_hello", "parse_hello_reply", "parse_point",
    "parse_task_end", "points_queue", "without_secrets",
]
