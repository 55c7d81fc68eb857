"""The wire protocol shared by the steering and the pilots: message schemas, queue names and
the kombu wiring. Pilots import only this package and ``evaluation``, never an optimiser."""
from __future__ import annotations

from gridhpo.protocol.broker import Broker, Delivery
from gridhpo.protocol.messages import (
    CONTROL_ACTIONS,
    EVENT_TYPES,
    PROTOCOL_VERSION,
    ControlMessage,
    Event,
    PointMessage,
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
    "Event",
    "PointMessage",
    "control_queue",
    "events_queue",
    "parse_control",
    "parse_event",
    "parse_point",
    "points_queue",
]
