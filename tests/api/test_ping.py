"""POST /api/v1/ping: contract, errors, audit and concurrency caps (T1190, T1499, SI-10).

All through a recording backend: no packet leaves this process here (policy tests included).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from ping_fakes import RecordingApp, RecordingBackend, app_with_backend
from pingcalc.ping import UnavailableBackend
from pingcalc.settings import Settings
from tests_support import PING_RESULT_KEYS, Tokens

URL = "/api/v1/ping"
# How long the fake backend holds a slot in the concurrency test; margins for a busy CI box.
HELD_SECONDS = 1.2


@pytest.fixture
def fake(settings: Settings) -> RecordingApp:
    return app_with_backend(settings, RecordingBackend())


@pytest.fixture
def api(fake: RecordingApp) -> Iterator[TestClient]:
    with TestClient(fake.app, raise_server_exceptions=False) as client:
        yield client


def test_ping_returns_result_shape(api: TestClient, fake: RecordingApp, tokens: Tokens) -> None:
    """A valid request answers the documented result and audits the ping."""
    response = api.post(URL, json={"target": "::1", "count": 2}, headers=tokens.header("pinger"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PING_RESULT_KEYS
    assert (body["target"], body["family"], body["sent"], body["received"]) == ("::1", 6, 2, 2)
    assert set(body["rtt_ms"]) == {"min", "avg", "max", "stddev"}
    assert [r["seq"] for r in body["replies"]] == [1, 2]
    assert body["backend"] == "fake"
    [event] = fake.audit_events("ping")
    assert event["outcome"] == "success" and event["token"] == "pinger"
    assert (event["target"], event["sent"], event["received"]) == ("::1", 2, 2)


def test_ping_uses_default_count_and_settings_bounds(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """Without `count` the configured default is used; the per-echo wait comes from settings."""
    settings = make_settings(ping_default_count=2, ping_timeout_seconds=0.5)
    fake = app_with_backend(settings, RecordingBackend())
    with TestClient(fake.app) as api:
        assert (
            api.post(URL, json={"target": "127.0.0.1"}, headers=tokens.header("full")).status_code
            == 200
        )
    [call] = fake.backend.calls
    echoes = call.echoes
    assert (echoes.count, echoes.timeout) == (2, 0.5)
    assert echoes.deadline >= (echoes.count - 1) * echoes.interval + echoes.timeout


def test_ping_count_above_configured_maximum_is_422(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """An operator may lower the maximum below 5; larger counts are refused (T1499)."""
    fake = app_with_backend(make_settings(ping_max_count=2), RecordingBackend())
    with TestClient(fake.app, raise_server_exceptions=False) as api:
        response = api.post(
            URL, json={"target": "127.0.0.1", "count": 3}, headers=tokens.header("full")
        )
        assert response.status_code == 422 and "between 1 and 2" in response.json()["detail"]
        ok = api.post(URL, json={"target": "127.0.0.1", "count": 2}, headers=tokens.header("full"))
        assert ok.status_code == 200
    assert len(fake.backend.calls) == 1


def test_no_reply_is_200_with_full_loss(settings: Settings, tokens: Tokens) -> None:
    """An unreachable target is a normal result, not an error."""
    fake = app_with_backend(settings, RecordingBackend(answer=False))
    with TestClient(fake.app) as api:
        response = api.post(URL, json={"target": "1.1.1.1"}, headers=tokens.header("pinger"))
    assert response.status_code == 200
    body = response.json()
    assert body["loss_percent"] == 100.0 and body["received"] == 0 and body["rtt_ms"] is None


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("169.254.169.254", "169.254.169.254 is link-local, which this server does not ping"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "shared address space"),
        ("224.0.0.1", "multicast"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "10.0.0.1 is private"),
    ],
)
def test_denied_target_is_403_with_reason(
    target: str, fragment: str, api: TestClient, fake: RecordingApp, tokens: Tokens
) -> None:
    """Internal targets are refused with the reason, audited, and never pinged (SSRF)."""
    response = api.post(URL, json={"target": target}, headers=tokens.header("pinger"))
    assert response.status_code == 403
    body = response.json()
    assert body["type"].endswith("target-denied") and fragment in body["detail"]
    assert fake.backend.calls == []
    [event] = fake.audit_events("ping_rejected")
    assert event["reason"] == "target_denied" and event["category"]


def test_global_target_passes_policy_to_fake_backend(
    api: TestClient, fake: RecordingApp, tokens: Tokens
) -> None:
    """A global address is allowed by the policy (the fake backend sends nothing)."""
    response = api.post(
        URL, json={"target": "8.8.8.8", "count": 1}, headers=tokens.header("pinger")
    )
    assert response.status_code == 200
    assert fake.backend.pinged() == ["8.8.8.8"]


def test_invalid_target_is_422_problem(api: TestClient, tokens: Tokens) -> None:
    """A malformed target is a 422 problem with kind invalid-target and a readable reason."""
    response = api.post(URL, json={"target": "0177.0.0.1"}, headers=tokens.header("pinger"))
    assert response.status_code == 422
    body = response.json()
    assert body["type"].endswith("invalid-target") and "leading zero" in body["detail"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_non_json_body_is_415(
    content_type: str | None, api: TestClient, fake: RecordingApp, tokens: Tokens
) -> None:
    """Only JSON bodies are read (no form or text parsing paths)."""
    headers = tokens.header("pinger")
    if content_type:
        headers["Content-Type"] = content_type
    response = api.post(URL, content=b'{"target": "127.0.0.1"}', headers=headers)
    assert response.status_code == 415
    assert fake.backend.calls == []
    headers["Content-Type"] = "application/json; charset=utf-8"
    assert api.post(URL, content=b'{"target": "127.0.0.1"}', headers=headers).status_code == 200


def test_ping_needs_token_with_ping_scope(
    api: TestClient, fake: RecordingApp, tokens: Tokens
) -> None:
    """No token is 401, a calculate-only token is 403; neither pings (TM-01)."""
    assert api.post(URL, json={"target": "127.0.0.1"}).status_code == 401
    assert (
        api.post(URL, json={"target": "127.0.0.1"}, headers=tokens.header("calc")).status_code
        == 403
    )
    assert fake.backend.calls == []


def test_unavailable_backend_is_503_without_internal_detail(
    settings: Settings, tokens: Tokens
) -> None:
    """No backend works: 503 with the operator's fix; the cause goes only to the audit log."""
    cause = "/opt/internal/ping: exit 2 (uid 4242)"
    fake = app_with_backend(settings, UnavailableBackend(cause))
    with TestClient(fake.app, raise_server_exceptions=False) as api:
        response = api.post(URL, json={"target": "127.0.0.1"}, headers=tokens.header("pinger"))
    assert response.status_code == 503
    assert cause not in response.text and "/opt/internal" not in response.text
    detail = response.json()["detail"]
    assert 'sysctl -w net.ipv4.ping_group_range="0 2147483647"' in detail
    assert "iputils-ping" in detail
    [event] = fake.audit_events("ping_failed")
    assert cause in event["error"]


def test_concurrency_caps_answer_at_once_and_health_stays_fast(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """More simultaneous pings than the caps: excess get 429/503 at once, the rest 200 (T1499)."""
    settings = make_settings(ping_max_in_flight=4, ping_max_per_token=2)
    tokens.add("pinger2", "ping")
    tokens.add("pinger3", "ping")
    fake = app_with_backend(settings, RecordingBackend(delay=HELD_SECONDS))

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=fake.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def ping(token: str) -> tuple[httpx.Response, float]:
                started = time.perf_counter()
                response = await client.post(
                    URL, json={"target": "127.0.0.1", "count": 1}, headers=tokens.header(token)
                )
                return response, time.perf_counter() - started

            async def health() -> float:
                await asyncio.sleep(0.5)  # while the pings are held
                started = time.perf_counter()
                assert (await client.get("/healthz")).status_code == 200
                return time.perf_counter() - started

            async def later(token: str) -> tuple[httpx.Response, float]:
                await asyncio.sleep(0.3)  # once the first token holds its slots
                return await ping(token)

            # First 3 from one token (its cap is 2: one 429), then 4 from two others while
            # those are held (only 2 fit under the total of 4: two 503).
            pings, health_seconds = await asyncio.gather(
                asyncio.gather(
                    *(ping("pinger") for _ in range(3)),
                    *(later(name) for name in ("pinger2", "pinger3", "pinger2", "pinger3")),
                ),
                health(),
            )
        statuses = sorted(r.status_code for r, _ in pings)
        assert statuses == [200, 200, 200, 200, 429, 503, 503]
        assert sorted(r.status_code for r, _ in pings[:3]) == [200, 200, 429]
        for response, seconds in pings:
            if response.status_code != 200:
                assert response.headers["Retry-After"] == "1"
                assert response.json()["retry_after"] == 1
                assert seconds < HELD_SECONDS / 2  # answered at once, not queued behind a ping
            else:
                assert seconds >= HELD_SECONDS
        assert health_seconds < HELD_SECONDS / 4

    asyncio.run(scenario())
    assert len(fake.backend.calls) == 4
    rejected = fake.audit_events("capacity_rejected")
    assert len(rejected) == 3 and {e["reason"] for e in rejected} == {
        "ping_capacity",
        "ping_per_token_capacity",
    }
