"""The wire protocol shared by the steering and the pilots: typed messages (``messages``:
the evaluation spec, events and their payloads, points, control), queue names and the kombu
wiring. Pilots import only this package and ``evaluation``, never an optimiser."""
from __future__ import annotations

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


# One import identity: this folder is gridhpo.protocol; imported as a top-level `protocol` (from the
# repository root) it would be a second copy of every module (docs/architecture.md, Layout).
if __name__ != "gridhpo.protocol":
    raise ImportError(f"import gridhpo.protocol, not {__name__}: the repository's top-level folders are "
                      "subpackages of gridhpo")
