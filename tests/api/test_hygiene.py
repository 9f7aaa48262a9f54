"""Request hygiene: security headers, request ids, body limits, no docs UI (OWASP A05)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from pingcalc.settings import Settings
from probe_app import probe_app, probe_past_the_limit
from tests_support import Tokens

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(probe_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/nope", "/probe/ping"])
def test_security_headers_on_every_api_response(api: TestClient, path: str) -> None:
    """Success and error responses alike carry the security headers and a request id."""
    response = api.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["x-request-id"]
    assert "server" not in response.headers


def test_client_request_id_is_recorded_beside_the_servers_own(
    api: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain X-Request-ID is recorded for correlation, but the request's id stays the
    server's: two clients sending the same id never share one in the audit trail (TM-11)."""
    capsys.readouterr()
    first = api.get("/healthz", headers={"X-Request-ID": "abc-123_x.y:z"})
    second = api.get("/healthz", headers={"X-Request-ID": "abc-123_x.y:z"})
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert ids[0] != ids[1] and all(len(rid) == 32 and rid.isalnum() for rid in ids)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    access = [line for line in lines if line.get("event") == "access"]
    assert [line["request_id"] for line in access] == ids
    assert [line["client_request_id"] for line in access] == ["abc-123_x.y:z"] * 2


@pytest.mark.parametrize(
    "value",
    [b"a" * 65, b"has space", b"semi;colon", b'quote"', b"<script>", b"\xc3\xa9", b"x\x1b[31m"],
)
def test_unsafe_request_id_is_replaced(api: TestClient, value: bytes) -> None:
    """An X-Request-ID that could inject headers or log lines is replaced by a fresh id."""
    response = api.get("/healthz", headers={b"X-Request-ID": value})
    rid = response.headers["x-request-id"]
    assert rid.encode() != value and len(rid) == 32 and rid.isalnum()


def test_streamed_body_over_limit_is_413(
    api: TestClient, tokens: Tokens, settings: Settings
) -> None:
    """A chunked body with no Content-Length is cut off at the limit, answered 413."""

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b"a" * 1024
        yield b'"}'

    response = api.post(
        "/probe/echo",
        content=chunks(),
        headers={**tokens.header("calc"), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_body_just_under_limit_is_accepted(
    api: TestClient, tokens: Tokens, settings: Settings
) -> None:
    """The limit is exact: a body of exactly the limit passes."""
    overhead = len(b'{"text": ""}')
    body = b'{"text": "' + b"a" * (settings.max_body_bytes - overhead) + b'"}'
    assert len(body) == settings.max_body_bytes
    response = api.post(
        "/probe/echo",
        content=body,
        headers={**tokens.header("calc"), "content-type": "application/json"},
    )
    assert response.status_code == 200


def test_no_swagger_ui_but_openapi_schema(api: TestClient) -> None:
    """No docs page that loads scripts from a CDN (/docs is the package's own page, same-origin
    only: tests/api/test_docs.py); the schema stays available."""
    docs = api.get("/docs")
    assert (
        docs.status_code == 200 and "script-src 'self';" in docs.headers["content-security-policy"]
    )
    assert not re.search(r'(?:src|href)="(?:https?:)?//', docs.text)  # nothing off-site
    assert api.get("/redoc").status_code == 404
    assert api.get("/openapi.json").json()["info"]["title"] == "pingcalc"


def test_per_ip_limit_applies_before_auth(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """Unauthenticated floods from one address are throttled before token checks (T1110)."""
    settings = make_settings(rate_limit_per_ip="3/minute")
    with TestClient(probe_app(settings)) as client:
        codes = [client.get("/probe/ping").status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        response = client.get("/probe/ping", headers=tokens.header("pinger"))
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        assert client.get("/healthz").status_code == 200


def test_auth_failures_throttle_guessing(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """After N failed tokens from an address, further guesses wait (429), while a valid token
    from the same address still works (T1110, AC-7: no lock-out for others' failures)."""
    settings = make_settings(auth_failures_per_ip="5/minute")
    with TestClient(probe_app(settings)) as client:
        for i in range(5):
            bad = {"Authorization": f"Bearer pc_guess{i:040d}"}
            assert client.get("/probe/ping", headers=bad).status_code == 401
        guess = client.get("/probe/ping", headers={"Authorization": "Bearer pc_guess6"})
        assert guess.status_code == 429
        assert guess.json()["reason"] == "auth_failure_limit"
        assert client.get("/probe/ping", headers=tokens.header("pinger")).status_code == 200


def test_limits_can_be_disabled(make_settings: Callable[..., Settings], tokens: Tokens) -> None:
    """With rate limiting off (an explicit choice), the legitimate requests all pass."""
    settings = make_settings(rate_limit_enabled=False, rate_limit_per_token="1/minute")
    with TestClient(probe_app(settings)) as client:
        codes = {
            client.get("/probe/ping", headers=tokens.header("pinger")).status_code for _ in range(5)
        }
        assert codes == {200}


def test_address_over_its_limit_is_refused_at_the_edge(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """Once over the per-IP limit, an address is answered 429 before routing, auth or audit
    (flood cost, T1499), while health probes still answer."""
    settings = make_settings(rate_limit_per_ip="2/minute", penalty_delay_seconds=0)
    with TestClient(probe_app(settings)) as client:
        first = probe_past_the_limit(client, tokens.header("pinger"), allowed=2)
        assert first.status_code == 429 and first.json()["reason"] == "ip_rate_limit"
        # Refused at the edge: even an unknown path gets 429, not 404.
        edge = client.get("/no/such/path")
        assert edge.status_code == 429 and int(edge.headers["retry-after"]) >= 1
        assert edge.headers["content-type"] == "application/problem+json"
        assert edge.headers["x-content-type-options"] == "nosniff"
        assert client.get("/healthz").status_code == 200


def test_edge_refusals_are_held_by_the_tarpit_but_probes_are_not(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """A refused flooder waits `penalty_delay_seconds` for each answer, so a keep-alive flood
    slows to a trickle (T1499); /healthz from the same address answers at once."""
    settings = make_settings(rate_limit_per_ip="1/minute", penalty_delay_seconds=0.3)
    with TestClient(probe_app(settings)) as client:
        assert client.get("/probe/ping", headers=tokens.header("pinger")).status_code == 200
        assert client.get("/probe/ping").status_code == 429  # boxed now, answered by deps
        started = time.perf_counter()
        held = client.get("/probe/ping")
        held_for = time.perf_counter() - started
        started = time.perf_counter()
        probe = client.get("/healthz")
        probe_for = time.perf_counter() - started
    assert held.status_code == 429 and held_for >= 0.15  # 0.5x-1.5x jitter
    assert probe.status_code == 200 and probe_for < 0.3


def test_token_over_its_limit_is_refused_at_the_edge(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """A token over its rate limit is answered 429 before routing and auth until its window
    frees (T1499); another token from the same address is unaffected."""
    settings = make_settings(rate_limit_per_token="2/minute", penalty_delay_seconds=0)
    with TestClient(probe_app(settings)) as client:
        flooder = tokens.header("pinger")
        codes = [client.get("/probe/ping", headers=flooder).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        edge = client.get("/no/such/path", headers=flooder)
        assert edge.status_code == 429 and edge.json()["reason"] == "token_rate_limit"
        assert int(edge.headers["retry-after"]) >= 1
        assert client.get("/probe/ping", headers=tokens.header("full")).status_code == 200
