"""The service's interactive API documentation works on a network with no way out: ``/docs``
and ``/redoc`` reference no other host, their assets come from the service (200, no token, as
the pages themselves), and Swagger UI renders every operation in a real headless Chromium
that fetched nothing from anywhere else."""
from __future__ import annotations

import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import Browser
from tests.service_harness import Service, running_service

pytest.importorskip("fastapi")
pytestmark = pytest.mark.integration
LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*['"]([^"']+)['"]""")


@pytest.fixture
def service(home: Path, tmp_path: Path) -> Iterator[Service]:
    with running_service(f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}", tmp_path / "server",
                         tls=False, extra=("--no-steer",)) as s:
        s.add_user("alice")
        yield s


def get(url: str, token: str | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=ssl.create_default_context()) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read()


def test_the_docs_pages_and_their_assets_come_from_the_service_alone(service: Service) -> None:
    for page in ("/docs", "/redoc"):
        status, kind, body = get(service.url + page)
        assert (status, kind.split(";")[0]) == (200, "text/html"), page
        html = body.decode()
        links = [a or b for a, b in LINK.findall(html)]
        assert links and all(link.startswith("/") and not link.startswith("//") for link in links), (page, links)
        assert not re.search(r"https?://", html), f"{page} names another host"
        for link in links:  # every asset and the OpenAPI description: 200, no token needed
            status, kind, body = get(service.url + link)
            assert status == 200 and body, (page, link)
    assert "validatorUrl" in get(service.url + "/docs")[2].decode(), "no badge fetched from validator.swagger.io"
    # the rules are as before: the documentation is open, the API is not
    assert get(service.url + "/api/v1/me")[0] == 401
    assert get(service.url + "/api/v1/me", service.tokens["alice"])[0] == 200
    assert get(service.url + "/docs-assets/nosuch.js")[0] == 404


def test_swagger_ui_renders_every_operation_offline(service: Service, tmp_path: Path) -> None:
    browser = Browser(tmp_path / "chromium-profile")
    try:
        browser.goto(service.url + "/docs")
        operations = browser.wait_for("document.querySelectorAll('.opblock').length")
        assert operations == 13  # the API (10) and the pilot gateway (3)
        fetched = browser.js("performance.getEntriesByType('resource').map(e => e.name)")
        assert fetched and all(url.startswith(service.url + "/") for url in fetched), fetched
        assert service.url + "/openapi.json" in fetched
    finally:
        browser.close()
