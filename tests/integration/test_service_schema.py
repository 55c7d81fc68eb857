"""Schemathesis against the service's own /openapi.json, on a real ``gridhpo server``: every
generated request, with a user's token, gets an answer that is no server error and matches
the schema (status code, content type, body)."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service_harness import Service, running_service  # noqa: E402

TASK = {"name": "fuzzed", "search_space": {"x": {"type": "float", "low": -1, "high": 1}},
        "budget": {"max_points": 3}, "evaluation": {"command": "true"}}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("schema")
    home = folder / "home"
    with running_service(f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}", folder,
                         tls=False) as s:
        s.add_user("alice")
        # task 1 exists and is alice's, so generated ids reach a real task now and then
        assert s.cli("alice", "status").exit_code == 0
        from gridhpo.service.client import Service as Client

        Client(s.url, s.tokens["alice"]).submit(TASK)
        yield s


@pytest.mark.heavy
def test_no_request_gets_a_server_error_or_an_answer_off_the_schema(service: Service) -> None:
    schema = schemathesis.openapi.from_url(service.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {service.tokens['alice']}"}
    checks = [not_a_server_error, content_type_conformance, response_schema_conformance, status_code_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13  # the API (10) and the pilot gateway (3), which `gridhpo server` mounts

    # positive: valid requests by the schema; negative: requests the schema forbids (wrong
    # types, missing and unknown fields), which must be refused, never crash a route
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):
        @given(case=operation.as_strategy(mode))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        call()
    assert service.proc.poll() is None and service.answers()
