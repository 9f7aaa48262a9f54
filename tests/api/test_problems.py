"""Every error is RFC 9457 problem+json with no internals (seed: Information Disclosure)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from pingcalc.settings import Settings
from probe_app import probe_app, probe_past_the_limit
from tests_support import Tokens, assert_problem


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(probe_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_404_is_problem(api: TestClient) -> None:
    """Unknown paths: 404 problem naming the path."""
    body = assert_problem(api.get("/no/such/thing"), 404)
    assert "/no/such/thing" in str(body["detail"])


def test_405_is_problem(api: TestClient) -> None:
    """Wrong method: 405 problem naming the method."""
    body = assert_problem(api.delete("/healthz"), 405)
    assert "DELETE" in str(body["detail"])


def test_401_403_are_problems(api: TestClient, tokens: Tokens) -> None:
    """Authentication and authorisation failures use the same shape."""
    assert_problem(api.get("/probe/ping"), 401)
    assert_problem(api.get("/probe/ping", headers=tokens.header("calc")), 403)


def test_422_names_field_and_reason(api: TestClient, tokens: Tokens) -> None:
    """Validation errors say which field and why, and the valid request still works."""
    headers = tokens.header("calc")
    body = assert_problem(api.post("/probe/echo", json={}, headers=headers), 422)
    assert body["errors"] == [{"field": "text", "reason": "Field required"}]
    assert "text: Field required" in str(body["detail"])
    body = assert_problem(api.post("/probe/echo", json={"text": "a", "x": 1}, headers=headers), 422)
    assert any(e["field"] == "x" for e in body["errors"])
    assert api.post("/probe/echo", json={"text": "ok"}, headers=headers).json() == {"text": "ok"}


def test_malformed_json_is_422_problem(api: TestClient, tokens: Tokens) -> None:
    """Broken JSON is a clear 422, not a 500."""
    response = api.post(
        "/probe/echo",
        content=b'{"text": "unterminated',
        headers={**tokens.header("calc"), "content-type": "application/json"},
    )
    body = assert_problem(response, 422)
    assert "not valid JSON" in str(body["detail"])


def test_413_is_problem(api: TestClient, tokens: Tokens, settings: Settings) -> None:
    """A body over the limit is refused with 413 before it is parsed."""
    big = b'{"text": "' + b"a" * settings.max_body_bytes + b'"}'
    response = api.post(
        "/probe/echo",
        content=big,
        headers={**tokens.header("calc"), "content-type": "application/json"},
    )
    assert_problem(response, 413)


def test_500_is_generic_with_request_id(api: TestClient) -> None:
    """An unexpected exception gives a generic 500: the request id, no internals."""
    response = api.get("/probe/boom", headers={"X-Request-ID": "trace-500"})
    body = assert_problem(response, 500)
    text = response.text
    assert "secret internal detail" not in text and "RuntimeError" not in text
    assert "Traceback" not in text and "/etc/passwd" not in text
    # The id to quote is the server's own (the client's is only recorded beside it).
    assert response.headers["x-request-id"] in str(body["detail"])
    assert body["request_id"] == response.headers["x-request-id"]
    # The app keeps serving after the error.
    assert api.get("/healthz").status_code == 200


def test_429_is_problem_with_retry_after(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """Over the per-token limit: 429 problem with Retry-After in seconds."""
    settings = make_settings(rate_limit_per_token="2/minute")
    with TestClient(probe_app(settings)) as client:
        response = probe_past_the_limit(client, tokens.header("pinger"), allowed=2)
        body = assert_problem(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert body["reason"] == "token_rate_limit"
