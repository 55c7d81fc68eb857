"""The service's API in process (FastAPI's test client) on SQLite: status codes of bad input,
isolation between users, API tokens that stop working. tests/integration/test_service.py
runs the real server."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from gridhpo.bookkeeping import Repository
from gridhpo.protocol.auth import pilot_credential
from gridhpo.service.accounts import Accounts, digest
from gridhpo.service.api import create_app

TASK = {"name": "quad", "search_space": {"x": {"type": "float", "low": -1, "high": 1}},
        "budget": {"max_points": 4}, "evaluation": {"command": "true"}}


class Users:
    def __init__(self, repo: Repository) -> None:
        self.accounts = Accounts(repo)
        for name, admin in (("alice", False), ("bob", False), ("root", True)):
            self.accounts.add_user(name, admin)
        self.token = {name: self.accounts.create_token(name)[1] for name in ("alice", "bob", "root")}

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token[name]}"}


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository(f"sqlite:///{tmp_path / 'b.db'}")
    yield r
    r.close()


@pytest.fixture
def users(repo: Repository) -> Users:
    return Users(repo)


@pytest.fixture
def client(repo: Repository) -> Iterator[TestClient]:
    with TestClient(create_app(repo, "file:///nowhere"), raise_server_exceptions=False) as c:
        yield c


def submit(client: TestClient, users: Users, who: str, **task: Any) -> int:
    r = client.post("/api/v1/tasks", json={"task": {**TASK, **task}}, headers=users.auth(who))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_a_submitted_task_is_its_owners_and_reads_as_gridhpo_status(client: TestClient, users: Users,
                                                                    repo: Repository) -> None:
    r = client.post("/api/v1/tasks", json={"task": TASK, "name": "mine"}, headers=users.auth("alice"))
    assert r.status_code == 201 and r.json() == {"id": 1, "name": "mine", "state": "active"}
    row = client.get("/api/v1/tasks/1", headers=users.auth("alice")).json()
    assert row["name"] == "mine" and row["points"] == "0/4" and row["queued"] == 0 and row["best"] == ""
    assert repo.task(1).spec["budget"]["max_points"] == 4
    assert client.get("/api/v1/me", headers=users.auth("root")).json() == {"name": "root", "admin": True}


def test_another_users_task_is_not_found_for_every_action(client: TestClient, users: Users) -> None:
    tid = submit(client, users, "alice")
    bob = users.auth("bob")
    assert client.get("/api/v1/tasks", headers=bob).json() == {"tasks": []}
    for method, path in (("GET", ""), ("GET", "/results"), ("POST", "/cancel"), ("POST", "/token"),
                         ("GET", "/report"), ("GET", "/figures/history")):
        r = client.request(method, f"/api/v1/tasks/{tid}{path}", headers=bob)
        missing = client.request(method, f"/api/v1/tasks/999{path}", headers=bob)
        # the same answer as a task that does not exist: ids cannot be probed
        assert (r.status_code, r.json()) == (404, {"error": f"no task {tid}", "field": None}), path
        assert (missing.status_code, missing.json()["error"]) == (404, "no task 999")
    r = client.get(f"/api/v1/tasks/{tid}/report?also={tid}", headers=users.auth("alice"))
    assert r.status_code == 200 and "<html" in r.text
    assert client.post(f"/api/v1/tasks/{tid}/cancel", headers=bob).status_code == 404
    assert client.get(f"/api/v1/tasks/{tid}", headers=users.auth("alice")).json()["state"] == "active"
    listed = client.get("/api/v1/tasks", headers=users.auth("root")).json()["tasks"]
    assert [t["id"] for t in listed] == [tid]  # an admin sees every task


def test_a_task_submitted_with_the_bookkeepings_credentials_is_seen_by_admins_only(
        client: TestClient, users: Users, repo: Repository) -> None:
    from gridhpo.steering.taskfile import parse_task

    spec = parse_task(TASK | {"name": "local"}).to_dict()
    tid = repo.create_task("local", spec)  # `gridhpo submit` without --server
    assert client.get(f"/api/v1/tasks/{tid}", headers=users.auth("alice")).status_code == 404
    assert client.get("/api/v1/tasks", headers=users.auth("alice")).json() == {"tasks": []}
    assert client.get(f"/api/v1/tasks/{tid}", headers=users.auth("root")).json()["name"] == "local"


def test_a_revoked_or_expired_token_stops_working_at_once(client: TestClient, users: Users) -> None:
    alice = users.auth("alice")
    assert client.get("/api/v1/tasks", headers=alice).status_code == 200
    (token,) = users.accounts.tokens("alice")
    assert users.accounts.revoke(token.id) == 1
    r = client.get("/api/v1/tasks", headers=alice)
    assert r.status_code == 401 and r.json()["error"] == "the API token was revoked"
    assert r.headers["www-authenticate"] == "Bearer"
    _, short = users.accounts.create_token("alice", expires_in=0.0)
    r = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {short}"})
    assert r.status_code == 401 and r.json()["error"] == "the API token has expired"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer ghpo_wrong"}, {"Authorization": "Basic eDp5"}])
def test_no_route_answers_without_a_live_token(client: TestClient, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/api/v1/tasks"), ("POST", "/api/v1/tasks"), ("GET", "/api/v1/tasks/1"),
                         ("POST", "/api/v1/tasks/1/token"), ("GET", "/api/v1/me")):
        assert client.request(method, path, headers=headers).status_code == 401, (method, path)


def test_bad_input_gets_its_status_code_and_names_the_field(client: TestClient, users: Users,
                                                            repo: Repository) -> None:
    alice = users.auth("alice") | {"Content-Type": "application/json"}
    cases: list[tuple[bytes, int, str | None]] = [
        (b'{"task": {"name": "x"', 400, "body"),
        (json.dumps({"task": TASK, "colour": "red"}).encode(), 422, "colour"),
        (json.dumps({"name": "x"}).encode(), 422, "task"),
        (json.dumps({"task": TASK | {"budget": {"max_points": 0}}}).encode(), 422, "task.budget.max_points"),
        (json.dumps({"task": TASK | {"optimiser": {"backend": "randon"}}}).encode(), 422, "task.optimiser.backend"),
        (json.dumps({"task": TASK, "name": "12"}).encode(), 422, "task"),
        (json.dumps({"task": TASK | {"bogus": 1}}).encode(), 422, "task"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "body"),
        (b" " * (1 << 20) + b"{}", 413, "body"),
    ]
    for body, status, field in cases:
        r = client.post("/api/v1/tasks", content=body, headers=alice)
        assert r.status_code == status, (body[:80], r.text)
        assert r.json()["field"] == field and r.json()["error"], r.json()
    assert repo.tasks() == []  # nothing recorded half-way
    submit(client, users, "bob")
    r = client.post("/api/v1/tasks", json={"task": TASK}, headers=alice)
    # names are unique across the service; the answer tells nothing of the task holding it
    assert (r.status_code, r.json()) == (409, {"error": "a task named 'quad' exists already; choose another name",
                                               "field": "name"})
    assert len(repo.tasks()) == 1
    r = client.post("/api/v1/tasks/1/token", json={"revoke": True, "expires": "soon"}, headers=alice)
    assert r.status_code == 404
    tid = submit(client, users, "alice", name="quad2")
    before = repo.task(tid).token
    r = client.post(f"/api/v1/tasks/{tid}/token", json={"revoke": True, "expires": "soon"}, headers=alice)
    assert r.status_code == 422 and "'soon' is not a duration" in r.json()["error"]
    assert repo.task(tid).token == before  # not replaced half-way
    r = client.get(f"/api/v1/tasks/{tid}/results?sort=best", headers=alice)
    assert r.status_code == 422 and r.json()["field"] == "sort"
    assert client.post(f"/api/v1/tasks/{tid}/cancel", headers=alice).status_code == 200
    r = client.post(f"/api/v1/tasks/{tid}/cancel", headers=alice)
    assert r.status_code == 409 and r.json()["error"] == "task 'quad2' is cancelled, not active"


@pytest.mark.parametrize("field", ["timeout", "grace", "heartbeat", "lost_after"])
def test_a_duration_made_to_backtrack_is_refused_at_once(client: TestClient, users: Users, repo: Repository,
                                                        field: str) -> None:
    """The attack: "1", 200,000 spaces, "x" as a duration made the old pattern (a ``\\s*`` on each
    side of the optional unit) backtrack for hours while holding the GIL, freezing the API and
    the steering in the same process. Now refused by its length, in one line naming the field."""
    alice = users.auth("alice")
    evil = "1" + " " * 200_000 + "x"
    r = client.post("/api/v1/tasks", json={"task": TASK | {"evaluation": {"command": "true", field: evil}}},
                    headers=alice)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert f"evaluation.{field}: " in error and "at most 64 characters" in error and len(error) < 200, error
    assert repo.tasks() == []


def test_a_chunked_body_beyond_the_limit_is_refused(client: TestClient, users: Users, repo: Repository) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536
        yield json.dumps({"task": TASK}).encode()

    r = client.post("/api/v1/tasks", content=chunks(), headers=users.auth("alice"))
    assert r.status_code == 413 and repo.tasks() == []


def test_the_pilot_token_is_the_tasks_and_revoke_replaces_it(client: TestClient, users: Users,
                                                             repo: Repository) -> None:
    tid = submit(client, users, "alice")
    answer = client.post(f"/api/v1/tasks/{tid}/token", headers=users.auth("alice"))
    assert answer.headers["cache-control"] == "no-store"  # no proxy or browser cache keeps the secret
    first = answer.json()
    # TOKEN.KEY, as `gridhpo token` prints it: the key verifies the steering's signatures
    assert first["token"] == pilot_credential(repo.task(tid).token or "") and first["expires_at"] is None
    again = client.post(f"/api/v1/tasks/{tid}/token", json={"revoke": True, "expires": "1h"},
                        headers=users.auth("alice")).json()
    assert again["token"] != first["token"] and again["token"] == pilot_credential(repo.task(tid).token or "")
    assert again["expires_at"] == pytest.approx(repo.task(tid).token_expires_at)


def test_tokens_are_stored_hashed_and_never_logged_or_published(client: TestClient, users: Users, repo: Repository,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tid = submit(client, users, "alice")
    client.get("/api/v1/tasks", headers={"Authorization": "Bearer ghpo_not-a-token"})
    pilot = client.post(f"/api/v1/tasks/{tid}/token", headers=users.auth("alice")).json()["token"]
    stored = {t.id: t for t in users.accounts.tokens()}
    with repo.engine.connect() as conn:
        from sqlalchemy import text

        digests = {r[0] for r in conn.execute(text("SELECT digest FROM api_tokens"))}
    assert len(stored) == 3 and digests == {digest(t) for t in users.token.values()}
    dump = (Path(repo.url.removeprefix("sqlite:///")).read_bytes()
            + client.get("/openapi.json").content + caplog.text.encode())
    for secret in [*users.token.values(), "ghpo_not-a-token"]:
        assert secret.encode() not in dump
    assert pilot.encode() not in caplog.text.encode()


def test_the_openapi_page_describes_the_routes_and_needs_no_token(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/tasks", "/api/v1/tasks/{id}", "/api/v1/tasks/{id}/results", "/api/v1/tasks/{id}/cancel",
            "/api/v1/tasks/{id}/token", "/api/v1/tasks/{id}/report"} <= set(spec["paths"])
    post = spec["paths"]["/api/v1/tasks"]["post"]
    assert {"201", "400", "401", "413", "422"} <= set(post["responses"])
    assert client.get("/docs").status_code == 200
    assert "cdn" not in client.get("/docs").text and client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_a_figure_is_a_png_of_the_users_task_and_bad_input_names_its_field(client: TestClient, users: Users) -> None:
    tid = submit(client, users, "alice")
    alice = users.auth("alice")
    r = client.get(f"/api/v1/tasks/{tid}/figures/history", headers=alice)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG")
    for path, field in ((f"{tid}/figures/nosuch", "figure"), (f"{tid}/figures/history?top=0", "top"),
                        (f"{tid}/figures/slices?importance=magic", "importance"), ("0/figures/history", "id")):
        bad = client.get(f"/api/v1/tasks/{path}", headers=alice)
        assert (bad.status_code, bad.json()["field"]) == (422, field), path
    assert client.get(f"/api/v1/tasks/{tid}/figures/history").status_code == 401
    assert client.get(f"/api/v1/tasks/{tid}/figures/history", headers=users.auth("root")).status_code == 200


def test_a_disabled_users_tokens_are_refused_at_once_and_no_new_one_is_made(client: TestClient, users: Users) -> None:
    tid = submit(client, users, "alice")
    revoked, active = users.accounts.disable("alice")
    assert revoked == 1 and [t.id for t in active] == [tid]
    r = client.get("/api/v1/me", headers=users.auth("alice"))
    assert r.status_code == 401 and r.json()["error"] == "the API token was revoked"
    with pytest.raises(Exception, match="user 'alice' is disabled"):
        users.accounts.create_token("alice")
    assert client.get(f"/api/v1/tasks/{tid}", headers=users.auth("root")).status_code == 200  # stays, for admins
    assert client.get("/api/v1/me", headers=users.auth("bob")).status_code == 200
    users.accounts.enable("alice")
    assert client.get("/api/v1/me", headers=users.auth("alice")).status_code == 401  # the old token stays dead
    new = users.accounts.create_token("alice")[1]
    assert client.get(f"/api/v1/tasks/{tid}", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_the_dashboard_asks_for_the_token_once_and_shows_only_the_users_tasks(client: TestClient, users: Users) -> None:
    mine, theirs = submit(client, users, "alice"), submit(client, users, "bob", name="other")
    page = client.get("/dashboard/")
    assert page.status_code == 401 and 'name="token"' in page.text and 'method="post"' in page.text
    wrong = client.post("/dashboard/login", data={"token": "ghpo_wrong"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not valid" in wrong.text and "set-cookie" not in wrong.headers
    assert client.get("/dashboard/api/tasks").status_code == 401
    assert client.get("/dashboard/static/plotly.js").status_code == 200  # the public library, no data
    ok = client.post("/dashboard/login", data={"token": users.token["alice"]}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard/"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    page = client.get("/dashboard/")
    assert page.status_code == 200 and "gridhpo dashboard" in page.text
    assert users.token["alice"] not in page.text  # the page's script never holds the token
    assert [t["id"] for t in client.get("/dashboard/api/tasks").json()] == [mine]
    assert client.get(f"/dashboard/api/task/{mine}").json()["task"]["summary"]["name"] == "quad"
    assert client.get(f"/dashboard/api/task/{theirs}").status_code == 404
    users.accounts.revoke(user="alice")
    assert client.get("/dashboard/api/tasks").status_code == 401  # the cookie's token is revoked too


def test_a_bug_answers_500_in_json_without_its_message_and_the_service_goes_on(
        client: TestClient, users: Users, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from gridhpo.service import tasks as ops

    secret = "-".join(("s3cret", "pilot", "token"))  # a value, as a real one: not in a source line

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"INSERT ... [parameters: ({secret!r},)]")

    monkeypatch.setattr(ops, "submit", broken)
    r = client.post("/api/v1/tasks", json={"task": TASK}, headers=users.auth("alice"))
    assert (r.status_code, r.json()) == (500, {"error": "internal error", "field": None})
    assert "RuntimeError" in caplog.text and secret not in caplog.text
    assert client.get("/api/v1/tasks", headers=users.auth("alice")).status_code == 200


def test_a_multi_objective_tasks_results_and_front_through_the_service(client: TestClient, users: Users,
                                                                       repo: Repository) -> None:
    """The results carry each objective's value and feasibility, so ``results --pareto
    --server`` finds the same front as locally; the status shows the front's size."""
    from gridhpo.bookkeeping.changes import Changes
    from gridhpo.bookkeeping.records import PointUpdate
    from gridhpo.steering.fronts import pareto_text
    from gridhpo.steering.reports import results

    goals = {"objective": [{"metric": "acc", "mode": "max"}, {"metric": "lat", "mode": "min"}],
             "constraints": [{"metric": "mem", "max": 16}], "optimiser": {"backend": "optuna", "algorithm": "tpe"}}
    tid = submit(client, users, "alice", **goals)
    # acc, lat, mem: point 1 is dominated by 0, point 2 is infeasible though better than both
    rows = [(0.9, 1.0, 8.0), (0.8, 2.0, 8.0), (0.95, 0.5, 32.0), (0.5, 0.2, 1.0)]
    ids = repo.add_points(tid, [(n, {"x": n / 10}) for n in range(len(rows))])
    ch = Changes()
    for pid, (acc, lat, mem) in zip(ids, rows, strict=True):
        ch.add(PointUpdate(pid, "finished", 1, 0.0, acc, None, 1.0, {"acc": acc, "lat": lat, "mem": mem}, mem <= 16))
    repo.apply(ch)
    alice = users.auth("alice")
    answer = client.get(f"/api/v1/tasks/{tid}/results", headers=alice).json()
    assert answer["objective"] == [{"metric": "acc", "mode": "max", "failure_value": None, "exhausted_value": None},
                                   {"metric": "lat", "mode": "min", "failure_value": None, "exhausted_value": None}]
    assert answer["constraints"] == [{"metric": "mem", "max": 16.0}]
    assert [p["feasible"] for p in answer["points"]] == [True, True, False, True]
    assert answer["points"][2]["metric_values"] == {"acc": 0.95, "lat": 0.5, "mem": 32.0}
    remote = json.loads(pareto_text(answer["points"], answer, "json"))
    local = json.loads(pareto_text(results(repo, repo.task(tid)), repo.task(tid).spec, "json"))
    assert [r["number"] for r in remote] == [r["number"] for r in local] == [0, 3]
    assert client.get(f"/api/v1/tasks/{tid}", headers=alice).json()["best"] == "front 2"
