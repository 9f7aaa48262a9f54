"""Bearer-token authentication and scopes (seed: Spoofing, hard-coded password; NIST IA-5, AC-6)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from pingcalc.auth import revoke_token
from pingcalc.settings import Settings
from probe_app import probe_app
from tests_support import HTTPResponse, Tokens


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(probe_app(settings), raise_server_exceptions=False) as client:
        yield client


def _is_problem(response: HTTPResponse, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def test_missing_token_is_401_with_bearer_challenge(api: TestClient) -> None:
    """No Authorization header: 401 and WWW-Authenticate: Bearer."""
    response = api.get("/probe/ping")
    _is_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer pc_wrongwrongwrongwrongwrong",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "pc_nobearer",
        "Bearer",
    ],
)
def test_bad_token_is_401(api: TestClient, header: str) -> None:
    """Unknown tokens, empty values and other schemes are all 401 with a Bearer challenge."""
    response = api.get("/probe/ping", headers={"Authorization": header})
    _is_problem(response, 401)
    assert "Bearer" in response.headers["www-authenticate"]


def test_revoked_token_is_401(api: TestClient, tokens: Tokens, settings: Settings) -> None:
    """A revoked token stops working at the next request, without a restart."""
    headers = tokens.header("pinger")
    assert api.get("/probe/ping", headers=headers).status_code == 200
    revoke_token(settings.tokens_file, "pinger")
    _is_problem(api.get("/probe/ping", headers=headers), 401)


def test_wrong_scope_is_403(api: TestClient, tokens: Tokens) -> None:
    """A valid token without the scope gets 403, naming the missing scope."""
    response = api.get("/probe/ping", headers=tokens.header("calc"))
    body = _is_problem(response, 403)
    assert "'ping'" in str(body["detail"])
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_right_scope_is_200(api: TestClient, tokens: Tokens) -> None:
    """The legitimate request works: right token, right scope."""
    for name, path in (
        ("pinger", "/probe/ping"),
        ("calc", "/probe/calculate"),
        ("full", "/probe/ping"),
    ):
        response = api.get(path, headers=tokens.header(name))
        assert response.status_code == 200 and response.json() == {"token": name}


def test_scheme_is_case_insensitive(api: TestClient, tokens: Tokens) -> None:
    """RFC 9110: the auth scheme is case-insensitive."""
    secret = tokens.secrets["pinger"]
    assert api.get("/probe/ping", headers={"Authorization": f"bearer {secret}"}).status_code == 200


@pytest.mark.ping  # 'ready' needs a ping backend; without one /readyz says 'degraded'
def test_health_needs_no_token(api: TestClient) -> None:
    """Probes for orchestrators are open and cheap."""
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json()["status"] == "ready"


def test_readyz_not_ready_when_tokens_vanish(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """With every token revoked the server fails closed and says it is not ready."""
    settings = make_settings()
    with TestClient(probe_app(settings)) as client:
        for name in ("full", "calc", "pinger"):
            revoke_token(settings.tokens_file, name)
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json()["status"] == "not ready"
        assert client.get("/probe/ping", headers=tokens.header("full")).status_code == 401
