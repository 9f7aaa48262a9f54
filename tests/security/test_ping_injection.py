"""Command and option injection through the ping target (TM-04: T1190, T1059.004, CWE-78, SI-10).

Every payload of `ping_payloads.txt` goes through the real HTTP stack to an app whose backend
only records calls: each must be refused with a 4xx, and the backend must never be called.
The app resolves host names only through the tests' DNS server on loopback (it knows no
names), so the two plain names of the corpus (`localhost`, `example.com`) are looked up
there and answered 404, and no DNS query ever leaves loopback; every other payload is refused
before any lookup.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dns_server import DnsServer, running_dns_server
from ping_fakes import RecordingApp, RecordingBackend, app_with_backend
from pingcalc.ping import PingError, TargetPolicy, parse_target
from pingcalc.settings import Settings
from tests_support import Tokens

PAYLOAD_FILE = Path(__file__).with_name("ping_payloads.txt")
# The corpus's valid host names: with names accepted they are looked up (in the tests' DNS),
# except localhost, which is the loopback address without any lookup (RFC 6761).
PLAIN_NAMES = {"example.com"}
LOOPBACK_NAMES = {"localhost"}


def _payloads() -> list[str]:
    lines = PAYLOAD_FILE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]


PAYLOADS = _payloads()


def _id(payload: str) -> str:
    return ascii(payload[:40])


@pytest.fixture(scope="module")
def empty_dns() -> Iterator[DnsServer]:
    """One loopback DNS server for the module's many payloads; it knows no name (NXDOMAIN)."""
    with running_dns_server() as server:
        yield server


@pytest.fixture
def dns(empty_dns: DnsServer) -> DnsServer:
    empty_dns.queries.clear()
    return empty_dns


@pytest.fixture
def fake(
    make_settings: Callable[..., Settings], dns: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecordingApp]:
    """The app with a recording backend and the tests' resolver; no subprocess may start."""

    async def no_subprocess(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a subprocess was started: {args!r}")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", no_subprocess)
    monkeypatch.setattr(asyncio, "create_subprocess_shell", no_subprocess)
    settings = make_settings(ping_resolver=dns.url, ping_resolve_timeout_seconds=1.0)
    yield app_with_backend(settings, RecordingBackend())


@pytest.fixture
def api(fake: RecordingApp) -> Iterator[TestClient]:
    with TestClient(fake.app, raise_server_exceptions=False) as client:
        yield client


def test_payload_corpus_is_large_and_distinct() -> None:
    """The corpus keeps at least 40 distinct payloads (issue 4's floor)."""
    assert len(PAYLOADS) >= 40
    assert len(set(PAYLOADS)) == len(PAYLOADS)


@pytest.mark.parametrize("payload", PAYLOADS, ids=_id)
def test_ping_rejects_injection_payload_without_calling_backend(
    payload: str, api: TestClient, fake: RecordingApp, dns: DnsServer, tokens: Tokens
) -> None:
    """Each hostile target gets a problem+json 4xx and no echo is ever sent."""
    response = api.post("/api/v1/ping", json={"target": payload}, headers=tokens.header("pinger"))
    if payload in LOOPBACK_NAMES:  # legitimate: "pinged" at 127.0.0.1 by the recording backend
        assert response.status_code == 200 and response.json()["target"] == "127.0.0.1"
        assert dns.queries == [] and fake.backend.pinged() == ["127.0.0.1"]
        return
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    if payload in PLAIN_NAMES:  # a valid name, unknown to the tests' DNS server
        assert response.status_code == 404 and body["type"].endswith("name-not-found"), body
        assert {name for name, _ in dns.queries} == {payload}
    else:
        assert response.status_code in (403, 422), response.text
        assert body["type"].endswith(("invalid-target", "target-denied")), body
        assert dns.queries == []  # refused before any lookup
    assert body["detail"]
    assert fake.backend.calls == []
    rejected = fake.audit_events("ping_rejected")
    assert rejected and rejected[-1]["outcome"] == "rejected" and rejected[-1]["token"] == "pinger"


@pytest.mark.parametrize("payload", PAYLOADS, ids=_id)
def test_engine_refuses_injection_payload(payload: str) -> None:
    """The engine alone (CLI path) refuses each payload with a PingError subclass."""
    with pytest.raises(PingError):
        TargetPolicy().check(parse_target(payload))


@pytest.mark.parametrize(
    "body",
    [
        {"target": "127.0.0.1", "count": 100000},
        {"target": "127.0.0.1", "count": 0},
        {"target": "127.0.0.1", "count": -1},
        {"target": "127.0.0.1", "count": "3"},
        {"target": "127.0.0.1", "count": True},
        {"target": "127.0.0.1", "count": 2.5},
        {"target": "127.0.0.1", "options": "-f"},
        {"target": "127.0.0.1", "size": 65000},
        {"target": ["127.0.0.1", "-f"]},
        {"target": 2130706433},
        {"target": {"$ne": ""}},
        {"target": None},
        {},
    ],
    ids=lambda b: json.dumps(b)[:40],
)
def test_ping_rejects_malformed_body_without_calling_backend(
    body: dict[str, Any], api: TestClient, fake: RecordingApp, tokens: Tokens
) -> None:
    """Oversized counts, extra options and non-string targets are 422 before any echo."""
    response = api.post("/api/v1/ping", json=body, headers=tokens.header("pinger"))
    assert response.status_code == 422, response.text
    assert fake.backend.calls == []


def test_legitimate_target_is_pinged_once(
    api: TestClient, fake: RecordingApp, tokens: Tokens
) -> None:
    """The same endpoint still works for a plain loopback address (the control case)."""
    response = api.post(
        "/api/v1/ping", json={"target": "127.0.0.1", "count": 2}, headers=tokens.header("pinger")
    )
    assert response.status_code == 200, response.text
    calls = fake.backend.calls
    assert len(calls) == 1 and str(calls[0].address) == "127.0.0.1" and calls[0].echoes.count == 2
