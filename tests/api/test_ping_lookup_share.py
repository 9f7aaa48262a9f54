"""`POST /api/v1/ping` in system-resolver mode: a token's share of the lookup slots (TM-33).

glibc keeps a silent name's `getaddrinfo` thread busy for about 10 s after the request's
lookup timed out, and the slot stays taken until the thread returns (so threads cannot pile
up). The app here runs the real route over a `SystemResolver` whose `getaddrinfo` stands in
for glibc with a silent name server; the backend records calls and sends nothing.
"""

from __future__ import annotations

import dataclasses
import io
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from ping_fakes import RecordingBackend, services_with
from pingcalc.app import create_app
from pingcalc.audit import Auditor, StdoutSink
from pingcalc.ping import SystemResolver
from pingcalc.settings import Settings
from tests_support import Tokens, audit_records

URL = "/api/v1/ping"


def test_a_token_whose_lookups_linger_is_429_at_its_share_and_others_still_resolve(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """TM-33: four silent names time out (504) but keep their threads; the token's fifth name
    is 429 `lookup_per_token_capacity` without a lookup, another token's name is resolved
    and pinged, and the share comes back when the threads return."""
    release = threading.Event()
    asked: list[str] = []

    def glibc(host: str, *args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        asked.append(host)
        if host.startswith("drop"):
            release.wait(10)
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", 0))]

    settings = make_settings(ping_resolve_timeout_seconds=0.2)
    stream = io.StringIO()
    services = services_with(settings, RecordingBackend(), Auditor([StdoutSink(stream)]))
    resolver = SystemResolver(
        timeout=0.2,
        max_in_flight=settings.ping_max_lookups,
        max_per_owner=settings.ping_max_per_token,
        getaddrinfo=glibc,
    )
    app = create_app(settings, services=dataclasses.replace(services, resolver=resolver))
    pinger, full = tokens.header("pinger"), tokens.header("full")
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            for n in range(settings.ping_max_per_token):
                slow = client.post(URL, json={"target": f"drop{n}.test"}, headers=pinger)
                assert slow.status_code == 504, slow.text
            refused = client.post(URL, json={"target": "good.test"}, headers=pinger)
            assert refused.status_code == 429, refused.text
            problem = refused.json()
            assert (problem["type"], problem["retry_after"]) == (
                "urn:pingcalc:problem:rate-limited",
                1,
            )
            assert refused.headers["retry-after"] == "1"
            assert problem["detail"] == (
                "this client already has 4 host name lookups in flight, its share; "
                "try again shortly"
            )
            assert "good.test" not in asked
            other = client.post(URL, json={"target": "good.test", "count": 1}, headers=full)
            assert other.status_code == 200 and other.json()["name"] == "good.test"
            release.set()
            for _ in range(100):
                if resolver.threads == 0:
                    break
                time.sleep(0.02)
            again = client.post(URL, json={"target": "good.test", "count": 1}, headers=pinger)
            assert again.status_code == 200, again.text
    finally:
        release.set()
    reasons = [
        r["reason"] for r in audit_records(stream.getvalue()) if r["event"] == "ping_rejected"
    ]
    assert reasons == ["resolver_timeout"] * 4 + ["lookup_per_token_capacity"]
