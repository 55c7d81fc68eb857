from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridhpo.errors import MessageError
from gridhpo.protocol import (
    PROTOCOL_VERSION,
    EvaluationSpec,
    Event,
    PointMessage,
    PointObjective,
    parse_event,
    parse_point,
)


def point() -> PointMessage:
    return PointMessage(task_id=1, task_name="t", point_id=5, number=4, attempt=2, params={"x": 1.5},
                        evaluation=EvaluationSpec(command="true"), objective=PointObjective(metric="loss", mode="min"))


def test_messages_round_trip_through_json() -> None:
    p = point()
    assert parse_point(json.loads(json.dumps(p.to_json()))) == p
    e = Event(type="finished", task_id=1, point_id=5, attempt=2, pilot_id="p1", data={"value": 0.5})
    assert parse_event(json.loads(json.dumps(e.to_json()))) == e


def test_every_message_names_task_point_attempt_and_is_versioned() -> None:
    body = Event(type="started", task_id=1, point_id=2, attempt=3, pilot_id="p").to_json()
    assert {body["task_id"], body["point_id"], body["attempt"]} == {1, 2, 3}
    assert body["v"] == PROTOCOL_VERSION and len(body["event_id"]) == 32


@pytest.mark.parametrize(("change", "message"), [
    ({"v": 99}, "protocol version 99 is not supported"),
    ({"kind": "point"}, "expected a 'event' message"),
    ({"type": "exploded"}, "event type 'exploded' is not one of"),
    ({"task_id": "1"}, "message field 'task_id': '1' has the wrong type"),
    ({"data": {"value": math.nan}}, "finished event: value nan is not a finite number"),
    ({"data": {"value": True}}, "is not a finite number"),
])
def test_bad_events_are_refused_with_the_reason(change: dict[str, object], message: str) -> None:
    body = Event(type="finished", task_id=1, point_id=5, attempt=1, pilot_id="p", data={"value": 1.0}).to_json()
    body.update(change)
    with pytest.raises(MessageError, match=message):
        parse_event(body)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=20))
def test_no_input_crashes_the_parsers(body: object) -> None:
    for parse in (parse_event, parse_point):
        try:
            parse(body)
        except MessageError:
            pass


def test_pilot_messages_round_trip_and_bad_ones_are_refused() -> None:
    from gridhpo.protocol.messages import (
        Hello,
        HelloReply,
        TaskEnd,
        message_kind,
        parse_hello,
        parse_hello_reply,
        parse_task_end,
    )

    hello = Hello(task_id=3, pilot_id="p1", site="s", host="h", auth="tok")
    reply = HelloReply(task_id=3, accepted=False, reason="token expired", hello_id=hello.hello_id, token_key="k")
    end = TaskEnd(task_id=3, state="cancelled", reason="by the user")
    for msg, parse in [(hello, parse_hello), (reply, parse_hello_reply), (end, parse_task_end)]:
        body = json.loads(json.dumps(msg.to_json()))
        assert parse(body) == msg and message_kind(body) == msg.kind
    assert message_kind([1]) is None and message_kind({"kind": 5}) is None
    with pytest.raises(MessageError, match="'pilot_id': longer than 64"):
        parse_hello({**hello.to_json(), "pilot_id": "p" * 65})
    with pytest.raises(MessageError, match="'accepted': 'yes' has the wrong type"):
        parse_hello_reply({**reply.to_json(), "accepted": "yes"})
    with pytest.raises(MessageError, match="task-end state 'paused' is not one of"):
        parse_task_end({**end.to_json(), "state": "paused"})


def test_parsers_raise_only_message_error_on_any_nesting() -> None:
    """A 10,000-deep reason once raised RecursionError out of parse_control, which no
    consumer caught."""
    deep: object = "x"
    for _ in range(10_000):
        deep = [deep]
    body = {"kind": "control", "v": PROTOCOL_VERSION, "task_id": 1, "point_id": 1, "attempt": 1,
            "action": "stop", "reason": deep}
    from gridhpo.protocol import parse_control

    with pytest.raises(MessageError, match="RecursionError"):
        parse_control(body)


@pytest.mark.parametrize(("raw", "content_type", "encoding", "reason"), [
    (b'{"a": 1}', "application/x-python-serialize", "binary", "content type 'application/x-python-serialize'"),
    (b'{"a": 1}', "application/x-yaml", "utf-8", "content type 'application/x-yaml' is not accepted"),
    (b'{"a": 1}', "application/json", "latin-1", "content encoding 'latin-1' is not accepted"),
    (b"\xff{", "application/json", "utf-8", "not JSON: UnicodeDecodeError"),
    (b"{not json", "application/json", "utf-8", "not JSON: JSONDecodeError"),
    (b"[" * 600 + b"]" * 600, "application/json", "utf-8", "JSON nested 33 levels deep"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", "utf-8", "not JSON: RecursionError"),
    (b"1" * 5000, "application/json", "utf-8", "not JSON: ValueError"),  # past int's digit limit
    (b" " * (1 << 20) + b"{}", "application/json", "utf-8", "over the limit"),
])
def test_decode_body_accepts_only_bounded_json(raw: bytes, content_type: str, encoding: str, reason: str) -> None:
    from gridhpo.protocol.messages import Undecodable, decode_body

    got = decode_body(raw, content_type, encoding)
    assert isinstance(got, Undecodable) and reason in got.reason, got
    with pytest.raises(MessageError, match=reason.split(":")[0]):
        parse_event(got)


def test_decode_body_gives_our_json() -> None:
    from gridhpo.protocol.messages import MAX_DEPTH, decode_body

    nested: object = 1
    for _ in range(MAX_DEPTH - 1):
        nested = {"a": nested}
    assert decode_body(json.dumps([nested]).encode(), "application/json", "utf-8") == [nested]
    assert decode_body('{"x": "é"}', "application/json", None) == {"x": "é"}


def test_without_secrets_drops_credentials_at_any_depth() -> None:
    from gridhpo.protocol.messages import without_secrets

    body = {"auth": "t", "data": {"Token": "t", "keep": [{"password": "p", "n": 1}]}, "x": 1}
    assert without_secrets(body) == {"data": {"keep": [{"n": 1}]}, "x": 1}
