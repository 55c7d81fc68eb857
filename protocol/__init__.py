"""The wire protocol shared by the steering and the pilots: typed messages (``messages``:
the evaluation spec, events and their payloads, points, control), queue names and the kombu
wiring. Pilots import only this package and ``evaluation``, never an optimiser."""
from __future__ import annotations

from gridhpo._layout import one_identity
from gridhpo.protocol.broker import Broker, Delivery
from gridhpo.protocol.messages import (
    CONTROL_ACTIONS,
    EVENT_TYPES,
    PROTOCOL_VERSION,
    ControlMessage,
    EvaluationSpec,
    Event,
    EventType,
    PointMessage,
    PointObjective,
    control_queue,
    events_queue,
    parse_control,
    parse_event,
    parse_point,
    points_queue,
)

__all__ = [
    "CONTROL_ACTIONS",
    "EVENT_TYPES",
    "PROTOCOL_VERSION",
    "Broker",
    "ControlMessage",
    "Delivery",
    "EvaluationSpec",
    "Event",
    "EventType",
    "PointMessage",
    "PointObjective",
    "control_queue",
    "events_queue",
    "parse_control",
    "parse_event",
    "parse_point",
    "points_queue",
]


one_identity(__name__)
