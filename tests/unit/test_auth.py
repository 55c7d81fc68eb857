"""protocol/auth.py: an event's code proves its token and nothing else does; a pilot's gate lets
through only what the steering signed for its task; whatever arrives, nothing raises."""
from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gridhpo.errors import ConfigError
from gridhpo.protocol import EvaluationSpec, Event, PointMessage, PointObjective
from gridhpo.protocol.auth import (
    KEY_FILE,
    UNPROVEN,
    Gate,
    Signer,
    Unauthentic,
    key_id,
    pilot_credential,
    proven_token,
    split_credential,
    steering_signer,
    with_mac,
)
from gridhpo.protocol.messages import Undecodable
from gridhpo.tokens import new_token

json_like = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                     max_size=3), max_leaves=12)


def wire(body: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(body)))


def event(token: str, **over: Any) -> dict[str, Any]:
    return Event(type="finished", task_id=3, point_id=5, attempt=1, pilot_id="p", data={"value": 0.5},
                 auth=token, **over).to_json()


def point(task_id: int = 3) -> dict[str, Any]:
    return PointMessage(task_id=task_id, task_name="t", point_id=5, number=1, attempt=1, params={"x": 0.25},
                        evaluation=EvaluationSpec(command="true"), objective=PointObjective()).to_json()


def test_an_events_code_proves_its_token_and_not_the_token_itself() -> None:
    token, old, other = new_token(), new_token(), new_token()
    sent = wire(with_mac(event(token)))
    assert token not in json.dumps(sent) and sent["auth"].startswith("hmac-sha256:")
    assert proven_token(sent, [other, token]) == token
    assert proven_token(sent, [other, old]) == UNPROVEN
    assert proven_token(wire(with_mac(event(old))), [token, old]) == old  # a replaced token is still recognised
    assert proven_token(event(token), [token]) == UNPROVEN  # a token in clear is never accepted
    assert proven_token(event(""), [token]) == ""
    assert key_id(token) != key_id(other) and token not in key_id(token) and key_id(UNPROVEN) == ""


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["type", "task_id", "point_id", "attempt", "pilot_id", "data", "time", "event_id"]), json_like)
def test_an_event_changed_after_its_code_is_not_proven(field: str, value: Any) -> None:
    token = "t" * 43
    sent = wire(with_mac(event(token)))
    changed = {**sent, field: value}
    # compared as JSON text, as the code is: True == 1 in Python, but not on the wire
    same = json.dumps(wire(changed), sort_keys=True) == json.dumps(sent, sort_keys=True)
    assert proven_token(changed, [token]) == (token if same else UNPROVEN)


def test_a_pilot_takes_only_what_its_steering_signed_for_its_task(tmp_path: Path) -> None:
    steering, stranger = Signer(Ed25519PrivateKey.generate()), Signer(Ed25519PrivateKey.generate())
    gate = Gate()
    gate.trust(steering.public, 3)
    good = wire(steering.sign(point()))
    assert gate.incoming(good) == good
    refused = {
        "unsigned": point(),
        "another key": wire(stranger.sign(point())),
        "another task": wire(steering.sign(point(task_id=4))),
        "altered": {**good, "evaluation": {"command": "rm -rf ~"}},
        "signature moved": {**wire(steering.sign(point())), "sig": good["sig"]},
        "control": {"kind": "control", "task_id": 3, "action": "stop"},
    }
    for name, body in refused.items():
        assert isinstance(gate.incoming(body), Undecodable), name
    assert gate.incoming({"kind": "event", "x": 1}) == {"kind": "event", "x": 1}  # not its to judge


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["kind", "sig", "task_id", "auth", "x"]), json_like) | json_like)
def test_no_body_makes_the_gate_or_the_proof_raise(body: Any) -> None:
    gate = Gate()
    gate.trust(Signer(Ed25519PrivateKey.generate()).public, 3)
    for kind in ("point", "control", "task-end", "hello-reply"):
        shaped = {**body, "kind": kind} if isinstance(body, dict) else body
        out = gate.incoming(shaped)
        assert out is shaped or isinstance(out, Undecodable)
    assert proven_token(body, ["t" * 43]) in ("", UNPROVEN)


def test_the_steering_key_is_made_once_readable_by_its_owner_only(home: Path) -> None:
    first, again = steering_signer(), steering_signer()
    assert first.public.text() == again.public.text()
    assert stat.S_IMODE((home / KEY_FILE).stat().st_mode) == 0o600
    token = new_token()
    got, key = split_credential(pilot_credential(token))
    assert got == token and key.text() == first.public.text()
    with pytest.raises(ConfigError, match="not an Ed25519 public key"):
        split_credential(f"{token}.not-a-key")
    with pytest.raises(Unauthentic):
        key.check(point(), {3})


def test_a_forged_refusal_does_not_make_a_pilot_exit(tmp_path: Path) -> None:
    from gridhpo.evaluation.handshake import EXIT_REFUSED, Handshake
    from gridhpo.protocol import Broker, control_queue
    from gridhpo.protocol.messages import DEAD_LETTER_QUEUE, HelloReply

    steering = Signer(Ed25519PrivateKey.generate())
    token = new_token()
    with Broker(f"filesystem://{tmp_path / 'q'}") as broker:
        broker.gate.trust(steering.public, 3)  # as a pilot of task 3 does
        stops: list[tuple[str, int]] = []
        hs = Handshake(broker, 3, "p", token, lambda reason, code: stops.append((reason, code)))
        refusal = HelloReply(task_id=3, accepted=False, reason="token expired", token_key=key_id(token)).to_json()
        broker.publish(control_queue(3, "p"), refusal)  # by whoever can write the queue
        hs.poll(force=True)
        assert stops == []
        dead = broker.get(DEAD_LETTER_QUEUE)
        assert dead is not None and "not signed by the steering" in dead.body["reason"]
        broker.publish(control_queue(3, "p"), steering.sign(refusal))  # the steering's own
        hs.poll(force=True)
        assert stops == [("token refused by the steering: token expired", EXIT_REFUSED)]
