"""The pilot gateway on the embedded defaults: auth, bad input, leases, the pilot's HTTP transport."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from gridhpo.bookkeeping import Repository
from gridhpo.client import Client
from gridhpo.errors import ConfigError
from gridhpo.gateway import Gateway, pilot_router, repository_tokens
from gridhpo.gateway.router import MAX_BODY_BYTES
from gridhpo.protocol import Broker, ControlMessage, EvaluationSpec, Event, PointMessage, PointObjective
from gridhpo.protocol.auth import pilot_credential, split_credential, steering_signer, with_mac
from gridhpo.protocol.httptransport import GatewayError, GatewayRefused, HttpBroker
from gridhpo.protocol.messages import control_queue, events_queue, points_queue
from gridhpo.protocol.wire import Undecodable
from gridhpo.tokens import new_token
from tests.gateway_harness import serving
from tests.servers import free_port


def unsigned(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "sig"}


@dataclass
class Setup:
    repo: Repository
    broker: Broker
    gw: Gateway
    client: TestClient
    app: FastAPI
    tid: int
    token: str
    other: int  # another task, with a token of its own
    other_token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token if token is None else token}"}

    def point(self, number: int) -> PointMessage:
        msg = PointMessage(task_id=self.tid, task_name="t", point_id=number, number=number, attempt=1,
                           params={"x": number}, evaluation=EvaluationSpec(command="true", heartbeat=0.2),
                           objective=PointObjective(metric="loss"))
        self.broker.publish(points_queue(self.tid, self.token), msg.to_json())
        return msg

    def take(self, request: str = "r1", most: int = 1, wait: float = 0.0) -> list[dict[str, Any]]:
        r = self.client.post(f"/api/v1/pilot/tasks/{self.tid}/points", headers=self.auth(),
                             json={"request_id": request, "max": most, "wait": wait})
        assert r.status_code == 200, r.text
        return list(r.json()["points"])


@pytest.fixture
def setup(home: Path) -> Iterator[Setup]:
    repo = Repository(f"sqlite:///{home / 'gridhpo.db'}")
    url = f"filesystem://{home / 'queue'}"
    token, other_token = new_token(), new_token()
    tid = repo.create_task("t", {}, token=token)
    other = repo.create_task("u", {}, token=other_token)
    broker = Broker(url)
    broker.gate.sign_with(steering_signer())  # it plays the steering: what pilots run is signed
    gw = Gateway(Broker(url), lease=60.0)
    app = FastAPI()
    app.include_router(pilot_router(gw, repository_tokens(repo, ttl=0.0)))
    with TestClient(app) as client:
        yield Setup(repo, broker, gw, client, app, tid, token, other, other_token)
    gw.close()
    broker.close()


def test_bad_requests_get_their_status_code_and_the_gateway_serves_on(setup: Setup) -> None:
    s = setup
    url = f"/api/v1/pilot/tasks/{s.tid}/points"
    good = {"request_id": "r1"}
    for headers in ({}, {"Authorization": "Basic abc"}, s.auth("wrong"), s.auth(s.other_token), s.auth("")):
        r = s.client.post(url, headers=headers, json=good)
        assert r.status_code == 401, (headers, r.text)
        assert s.token not in r.text
    assert s.client.post("/api/v1/pilot/tasks/999/points", headers=s.auth(), json=good).status_code == 401
    for tid in ("0", "-1", str(2**63), "x"):
        assert s.client.post(f"/api/v1/pilot/tasks/{tid}/points", headers=s.auth(), json=good).status_code == 422
    bad_json = s.client.post(url, headers={**s.auth(), "Content-Type": "application/json"}, content=b"{not json")
    assert bad_json.status_code == 400 and "not JSON" in bad_json.json()["detail"]["error"]
    for body, field in (({"request_id": "r1", "extra": 1}, "extra"), ({}, "request_id"),
                        ({"request_id": "r1", "max": 0}, "max"), ({"request_id": "r1", "wait": 3600}, "wait"),
                        ({"request_id": "a b"}, "request_id"), ([1, 2], None)):
        r = s.client.post(url, headers=s.auth(), json=body)
        assert r.status_code == 422, (body, r.text)
        assert field is None or r.json()["detail"]["field"] == field
    huge = b'{"request_id": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert s.client.post(url, headers=s.auth(), content=huge).status_code == 413
    # chunked, without a Content-Length to trust
    chunked = s.client.post(url, headers=s.auth(), content=iter([huge[:1000], huge[1000:]]))
    assert chunked.status_code == 413
    deep = b"[" * 100_000 + b"]" * 100_000
    assert s.client.post(url, headers=s.auth(), content=deep).status_code in (400, 422)
    events = f"/api/v1/pilot/tasks/{s.tid}/events"
    foreign = Event(type="heartbeat", task_id=s.other, point_id=1, attempt=1, pilot_id="p").to_json()
    r = s.client.post(events, headers=s.auth(), json={"pilot_id": "p", "messages": [foreign]})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "messages.0"
    r = s.client.post(events, headers=s.auth(), json={"pilot_id": "p", "messages": [{"kind": "point"}]})
    assert r.status_code == 422
    settle = f"/api/v1/pilot/tasks/{s.tid}/settle"
    assert s.client.post(settle, headers=s.auth(), json={"delivery": "d", "action": "eat"}).status_code == 422
    assert s.broker.size(events_queue(s.tid)) == 0, "nothing bad was passed on"
    msg = s.point(1)
    assert [p["body"]["message_id"] for p in s.take()] == [msg.message_id]


def test_a_revoked_token_is_refused_at_once(setup: Setup) -> None:
    s = setup
    s.point(1)
    assert len(s.take()) == 1
    s.repo.set_token(s.tid, new_token(), None)
    r = s.client.post(f"/api/v1/pilot/tasks/{s.tid}/points", headers=s.auth(), json={"request_id": "r2"})
    assert r.status_code == 401
    s.repo.set_token(s.tid, s.token, time.time() - 1)  # expired
    assert s.client.post(f"/api/v1/pilot/tasks/{s.tid}/points", headers=s.auth(),
                         json={"request_id": "r2"}).status_code == 401


def test_a_retried_request_gets_the_same_points_and_no_other(setup: Setup) -> None:
    s = setup
    sent = [s.point(n).message_id for n in range(3)]
    first = s.take("again", most=2)
    assert [p["body"]["message_id"] for p in first] == sent[:2]
    assert s.take("again", most=2) == first  # the answer was lost: the pilot asks again
    assert [p["body"]["message_id"] for p in s.take("next", most=2)] == sent[2:]


def test_a_point_whose_pilot_goes_silent_goes_back_when_its_lease_expires(setup: Setup) -> None:
    s = setup
    msg = s.point(1)
    held = s.take("a")
    assert s.take("b") == [] and s.gw.held() == 1
    s.gw.renew(s.tid, [held[0]["delivery"]])
    assert s.gw.expire(time.monotonic() + 30) == 0, "renewed: not expired yet"
    assert s.gw.expire(time.monotonic() + 61) == 1
    again = s.take("c")
    assert [p["body"]["message_id"] for p in again] == [msg.message_id]
    # the silent pilot's late ack changes nothing: the point is held for the other one
    r = s.client.post(f"/api/v1/pilot/tasks/{s.tid}/settle", headers=s.auth(),
                      json={"delivery": held[0]["delivery"], "action": "ack"})
    assert r.json() == {"settled": False} and s.gw.held() == 1


def test_settling_acks_requeues_or_sets_aside(setup: Setup) -> None:
    s = setup
    settle = f"/api/v1/pilot/tasks/{s.tid}/settle"
    m1, m2 = s.point(1), s.point(2)
    d1, d2 = (p["delivery"] for p in s.take(most=2))
    assert s.client.post(settle, headers=s.auth(), json={"delivery": d1, "action": "requeue"}).json()["settled"]
    assert s.client.post(settle, headers=s.auth(), json={"delivery": d2, "action": "ack"}).json()["settled"]
    assert not s.client.post(settle, headers=s.auth(), json={"delivery": d2, "action": "ack"}).json()["settled"]
    assert [p["body"]["message_id"] for p in s.take("r2", most=2)] == [m1.message_id]
    assert s.gw.held() == 1 and m2


def test_events_pass_on_unchanged_and_the_answer_brings_the_pilots_decisions(setup: Setup) -> None:
    s = setup
    ev = Event(type="heartbeat", task_id=s.tid, point_id=1, attempt=1, pilot_id="p1", auth=s.token).to_json()
    stop = ControlMessage(task_id=s.tid, point_id=1, attempt=1, action="stop", reason="early stopping").to_json()
    s.broker.publish(control_queue(s.tid, "p1"), stop)
    r = s.client.post(f"/api/v1/pilot/tasks/{s.tid}/events", headers=s.auth(),
                      json={"pilot_id": "p1", "messages": [ev]})
    # as the steering sent it: signed on the way (the pilot checks the signature)
    assert r.status_code == 200 and [unsigned(c) for c in r.json()["control"]] == [stop]
    assert all("sig" in c for c in r.json()["control"])
    got = s.broker.get(events_queue(s.tid))
    # passed on with the token replaced by a code over the event: the token never reaches the broker
    assert got is not None and got.body == with_mac(ev) and s.token not in json.dumps(got.body)


def test_the_openapi_page_documents_the_bodies_and_holds_no_secret(setup: Setup) -> None:
    page = setup.client.get("/openapi.json").json()
    body = page["paths"]["/api/v1/pilot/tasks/{task_id}/points"]["post"]["requestBody"]
    assert "request_id" in json.dumps(body)
    assert setup.token not in json.dumps(page)


# ---------------------------------------------------------------------- the pilot's side


def test_an_http_pilot_takes_only_points_its_steering_signed(setup: Setup, home: Path) -> None:
    """Whoever can write the broker (a hostile site, another task's pilot) can put a point on
    this task's queue; through the gateway it reaches the pilot, which must not take it."""
    s = setup
    forged = PointMessage(task_id=s.tid, task_name="t", point_id=66, number=66, attempt=1, params={},
                          evaluation=EvaluationSpec(command="touch owned"), objective=PointObjective())
    with Broker(f"filesystem://{home / 'queue'}") as attacker:  # no steering key of its own
        attacker.publish(points_queue(s.tid, s.token), forged.to_json())
    genuine = s.point(1)
    credential = pilot_credential(s.token)  # TOKEN.KEY, as `gridhpo token` prints it
    with serving(s.app) as url, HttpBroker(url, s.tid, credential, long_poll=0.2) as hb:
        hb.gate.trust(split_credential(credential)[1], s.tid)  # what Pilot and Client do with it
        got = [hb.get(points_queue(s.tid, s.token)) for _ in range(2)]
    bodies = [d.body for d in got if d is not None]
    assert len(bodies) == 2
    assert isinstance(bodies[0], Undecodable) and "not signed by the steering" in bodies[0].reason
    assert unsigned(bodies[1]) == genuine.to_json()


def test_the_http_broker_is_what_a_pilot_uses_of_a_broker(setup: Setup) -> None:
    s = setup
    msg = s.point(1)
    with serving(s.app) as url, HttpBroker(url, s.tid, s.token, long_poll=0.2) as hb:
        queue = points_queue(s.tid, s.token)
        d = hb.get(queue)
        assert d is not None and unsigned(d.body) == msg.to_json() and "sig" in d.body
        ev = Event(type="started", task_id=s.tid, point_id=1, attempt=1, pilot_id="p1", auth=s.token)
        s.broker.publish(control_queue(s.tid, "p1"), ControlMessage(task_id=s.tid, point_id=1, attempt=1,
                                                             action="pause").to_json())
        d.ack()
        assert s.gw.held() == 1, "the ack rides on the pilot's next request"
        hb.publish(events_queue(s.tid), ev.to_json())
        assert s.gw.held() == 0
        c = hb.get(control_queue(s.tid, "p1"))
        assert c is not None and c.body["action"] == "pause"
        assert hb.get(queue) is None  # waited the long-poll, nothing came
    got = s.broker.get(events_queue(s.tid))
    assert got is not None and got.body == with_mac(ev.to_json()) and s.token not in json.dumps(got.body)


def test_a_wrong_token_is_refused_at_once_and_an_absent_gateway_after_the_patience(setup: Setup) -> None:
    with serving(setup.app) as url, HttpBroker(url, setup.tid, "wrong", long_poll=0.1) as hb:
        t0 = time.monotonic()
        with pytest.raises(GatewayRefused, match="401"):
            hb.get(points_queue(setup.tid, "wrong"))
        assert time.monotonic() - t0 < 5
    nobody = HttpBroker(f"http://127.0.0.1:{free_port()}", setup.tid, setup.token, patience=0.5)
    with pytest.raises(GatewayError, match=r"unreachable for 0\.5s"):
        nobody.publish(events_queue(setup.tid), Event(type="heartbeat", task_id=setup.tid, point_id=1, attempt=1,
                                                      pilot_id="p").to_json())
    with pytest.raises(GatewayError, match="not an http"):
        HttpBroker("ftp://example.org", 1, "t")


# ---------------------------------------------------------------------- the ask/tell client


def test_importing_gridhpo_leaves_the_client_until_it_is_used() -> None:
    code = ("import sys, gridhpo\n"
            "assert 'gridhpo.client' not in sys.modules and 'gridhpo.protocol' not in sys.modules\n"
            "assert gridhpo.Client.__module__ == 'gridhpo.client'\n"
            "assert not {'fastapi', 'sqlalchemy', 'numpy'} & set(sys.modules), 'the client stays light'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_client_submits_a_task_file_and_takes_its_pilot_token(tmp_path: Path) -> None:
    seen: list[tuple[str, str, Any]] = []
    api = FastAPI()

    @api.post("/api/v1/tasks", status_code=201)
    async def create(request: Request) -> dict[str, Any]:
        seen.append((request.url.path, request.headers["authorization"], await request.json()))
        return {"id": 7, "name": "mine", "state": "active"}

    @api.post("/api/v1/tasks/{tid}/token")
    async def token(tid: int, request: Request) -> dict[str, Any]:
        seen.append((request.url.path, request.headers["authorization"], await request.json()))
        return {"task": tid, "token": "pilot-token-7", "expires_at": None}

    task_file = tmp_path / "task.yaml"
    task_file.write_text("name: mine\nsearch_space: {x: {type: float, low: 0, high: 1}}\n")
    with serving(api) as url:
        task = Client(url, "api-token").create(task_file, name="renamed")
    assert (task.id, task.token) == (7, "pilot-token-7")
    assert seen == [("/api/v1/tasks", "Bearer api-token", {"task": {"name": "mine", "search_space": {
        "x": {"type": "float", "low": 0, "high": 1}}}, "name": "renamed"}),
        ("/api/v1/tasks/7/token", "Bearer api-token", {"revoke": False, "expires": None})]
    task_file.write_text("a: [")
    with pytest.raises(ConfigError, match="not YAML"):
        Client(url, "t").create(task_file)  # refused before any request
    assert len(seen) == 2


def test_a_point_the_client_cannot_run_fails_and_the_next_one_comes(setup: Setup) -> None:
    s = setup
    bad = PointMessage(task_id=s.tid, task_name="t", point_id=9, number=9, attempt=1, params={"x": 9},
                       evaluation=EvaluationSpec(command="true"), objective=PointObjective(metric="loss"))
    # a heartbeat no steering of ours would send: the client cannot run the point
    unusable = {**bad.to_json(), "evaluation": {"command": "true", "heartbeat": -1}}
    s.broker.publish(points_queue(s.tid, s.token), unusable)
    good = s.point(1)
    with serving(s.app) as url:
        task = Client(url, "unused").attach(s.tid, pilot_token=s.token)
        trial = task.trial()
        assert trial.msg.message_id == good.message_id
        trial.finish(loss=1.0)
        task.close()
    sent = [d.body for _ in range(3) if (d := s.broker.get(events_queue(s.tid))) is not None]
    assert [(e["point_id"], e["type"]) for e in sent] == [(9, "failed"), (1, "started"), (1, "finished")]
    assert "heartbeat" in sent[0]["data"]["reason"]
    assert s.gw.held() == 0, "both points acknowledged"
