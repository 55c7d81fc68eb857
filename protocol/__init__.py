"""The wire protocol shared by the steering and the pilots: message schemas, queue names and
the kombu wiring. Pilots import only this package and ``evaluation``, never an optimiser."""
from __future__ import annotations

from gridhpo.protocol.broker import Broker, Delivery
from gridhpo.protocol.messages import (
    EVENT_TYPES,
    PROTOCOL_VERSION,
    Event,
    PointMessage,
    events_queue,
    parse_event,
    parse_point,
    points_queue,
)

__all__ = [
    "EVENT_TYPES",
    "PROTOCOL_VERSION",
    "Broker",
    "Delivery",
    "Event",
    "PointMessage",
    "events_queue",
    "parse_event",
    "parse_point",
    "points_queue",
]
