"""protocol/sigtree.py and the batch signature of protocol/auth.py: a batch of messages signed
once proves each of them and nothing else; every way of moving a signature, a path or a root
from one message to another is refused, and the verified roots a pilot remembers never let an
unverified one through."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gridhpo.protocol import EvaluationSpec, PointMessage, PointObjective
from gridhpo.protocol.auth import UNPROVEN, Gate, Signer, Unauthentic, Verifier, mac_text, proven_token
from gridhpo.protocol.messages import Undecodable
from gridhpo.protocol.sigtree import BadPath, build, leaf_hash, node_hash, root_from_path
from gridhpo.tokens import new_token


def point(n: int, task_id: int = 3) -> dict[str, Any]:
    return PointMessage(task_id=task_id, task_name="t", point_id=n, number=n, attempt=1, params={"x": n / 10},
                        evaluation=EvaluationSpec(command="true"), objective=PointObjective()).to_json()


def batch(signer: Signer, n: int, task_id: int = 3) -> list[tuple[dict[str, Any], bytes]]:
    """``n`` points signed as one batch: each as decoded and as its wire text."""
    texts = signer.seal([point(i, task_id) for i in range(n)])
    return [(json.loads(t), t) for t in texts]


def with_sig(body: dict[str, Any], sig: str) -> dict[str, Any]:
    return {**body, "sig": sig}


def sig_parts(body: dict[str, Any]) -> list[str]:
    return str(body["sig"]).split(".")


def refused(verifier: Verifier, body: dict[str, Any], raw: bytes | None = None) -> bool:
    try:
        verifier.check(body, {3}, raw)
    except Unauthentic:
        return True
    return False


class CountingKey:
    """An Ed25519 public key that counts its verifications."""

    def __init__(self, key: Any) -> None:
        self.key, self.calls = key, 0

    def verify(self, signature: bytes, data: bytes) -> None:
        self.calls += 1
        self.key.verify(signature, data)


@pytest.fixture
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def leads_to(leaf: bytes, index: int, n: int, path: list[bytes]) -> bytes | None:
    try:
        return root_from_path(leaf, index, n, path)
    except BadPath:
        return None


def test_every_leaf_of_every_tree_size_leads_to_its_root_and_only_at_its_index() -> None:
    for n in range(1, 20):
        leaves = [f"m{i}".encode() for i in range(n)]
        root, paths = build(leaves)
        for i, path in enumerate(paths):
            assert root_from_path(leaf_hash(leaves[i]), i, n, path) == root
            assert all(leads_to(leaf_hash(leaves[i]), j, n, path) != root for j in range(n) if j != i)
        # a path may fit trees of several sizes (leaf 0 of 3 or of 4 leaves): the size is signed
        # with the root (sigtree.signed_bytes), see "another batch size" below


def test_a_batch_is_verified_with_one_signature_check(signer: Signer) -> None:
    verifier = signer.public
    counting = CountingKey(verifier._key)
    verifier._key = counting  # type: ignore[assignment]
    sent = batch(signer, 64)
    for body, raw in sent[10:18]:  # a pilot's 8 points of a 64-point batch
        verifier.check(body, {3}, raw)
        verifier.check(body, {3}, raw.decode())  # as py-amqp hands it over
        verifier.check(body, {3})  # re-serialised on the way (the HTTP gateway): still valid
    assert counting.calls == 1
    single = signer.sign(point(99))  # a single message is a batch of one
    verifier.check(single, {3})
    assert sig_parts(single)[1:3] == ["0", "1"] and len(sig_parts(single)) == 3


def test_moved_or_altered_paths_are_refused(signer: Signer) -> None:
    verifier = signer.public
    (b0, r0), (b1, _), (b2, _), _ = batch(signer, 4)
    verifier.check(b0, {3}, r0)  # its root is now remembered: none of these may use that
    p0, p1 = sig_parts(b0), sig_parts(b1)
    attacks = {
        "another message's path": with_sig(b1, b0["sig"]),
        "a path for another index": with_sig(b0, ".".join([p0[0], "1", *p0[2:]])),
        "another index with its path": with_sig(b0, ".".join(p1)),
        "a truncated path": with_sig(b0, ".".join(p0[:-1])),
        "an extended path": with_sig(b0, ".".join([*p0, p0[-1]])),
        "another batch size": with_sig(b0, ".".join([p0[0], "0", "2", *p0[3:]])),
        "a batch size its path also fits": with_sig(b0, ".".join([p0[0], "0", "3", *p0[3:]])),
        "a bare v2 signature": with_sig(b0, p0[0]),
        "a tampered body with a valid path": {**b2, "params": {"x": 7}},
        "another task's body": {**b0, "task_id": 4},
    }
    for name, body in attacks.items():
        assert refused(verifier, body), name
    tampered = r0.replace(b'"x":0.0', b'"x":7')
    assert refused(verifier, json.loads(tampered), tampered), "tampered wire text"
    assert refused(verifier, json.loads(tampered), tampered.decode()), "tampered wire text, decoded"


def test_a_forged_root_signature_is_refused(signer: Signer) -> None:
    stranger = Signer(Ed25519PrivateKey.generate())
    (body, raw), _ = batch(signer, 2)
    (theirs, _), _ = batch(stranger, 2)
    forged = ".".join([sig_parts(theirs)[0], *sig_parts(body)[1:]])  # same root, their signature
    assert refused(signer.public, with_sig(body, forged))
    zeros = "ed25519:" + "A" * 86
    assert refused(signer.public, with_sig(body, ".".join([zeros, *sig_parts(body)[1:]])))
    signer.public.check(body, {3}, raw)
    assert refused(signer.public, with_sig(body, forged)), "a remembered root with another signature"


def test_a_leaf_can_never_pass_as_an_inner_node() -> None:
    leaves = [b"a", b"b", b"c", b"d"]
    root, _ = build(leaves)
    left, right = node_hash(leaf_hash(b"a"), leaf_hash(b"b")), node_hash(leaf_hash(b"c"), leaf_hash(b"d"))
    assert node_hash(left, right) == root
    # the inner node (a, b) presented as the data of leaf 0 of a 2-leaf tree
    assert root_from_path(leaf_hash(leaf_hash(b"a") + leaf_hash(b"b")), 0, 2, [right]) != root
    # a leaf presented as the whole tree of one
    assert root_from_path(leaf_hash(left + right), 0, 1, []) != root


def test_a_message_of_another_tasks_batch_is_refused(signer: Signer) -> None:
    mixed = signer.seal([point(1, task_id=3), point(2, task_id=4)])
    gate = Gate()
    gate.trust(signer.public, 3)
    mine, theirs = (json.loads(t) for t in mixed)
    assert gate.incoming(mine, mixed[0]) == mine
    assert isinstance(gate.incoming(theirs, mixed[1]), Undecodable)


def test_an_events_code_is_proven_from_its_wire_text() -> None:
    token = new_token()
    body = {"kind": "event", "v": 3, "task_id": 3, "data": {"value": 0.5}, "auth": token}
    raw = mac_text(body)
    sent = json.loads(raw)
    assert token.encode() not in raw
    assert proven_token(sent, [new_token(), token], raw) == token
    assert proven_token(sent, [token]) == token  # re-serialised on the way
    tampered = raw.replace(b'"value":0.5', b'"value":0.1')
    assert proven_token(json.loads(tampered), [token], tampered) == UNPROVEN


def test_the_steerings_batch_reaches_the_pilot_through_a_broker(signer: Signer, tmp_path: Path) -> None:
    from gridhpo.protocol import Broker, points_queue

    with Broker(f"filesystem://{tmp_path / 'q'}") as steering, Broker(f"filesystem://{tmp_path / 'q'}") as pilot:
        steering.gate.sign_with(signer)
        pilot.gate.trust(signer.public, 3)
        steering.publish_many([(points_queue(3), point(i)) for i in range(5)])
        got = pilot.drain(points_queue(3), max_messages=10, timeout=1.0)
        assert sorted(d.body["point_id"] for d in got) == [0, 1, 2, 3, 4]
        assert {sig_parts(d.body)[2] for d in got} == {"5"}
