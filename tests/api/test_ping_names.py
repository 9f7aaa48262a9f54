"""`POST /api/v1/ping` with host names, in process, against the loopback DNS server (TM-31..34).

The app resolves through `PINGCALC_PING_RESOLVER=dns://127.0.0.1:PORT` (the `dns_server`
fixture) and "pings" with the recording backend: no packet is sent, and no DNS query
leaves loopback. Every outcome is one audit record naming the name and the address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from dns_server import DnsServer
from ping_fakes import RecordingApp, RecordingBackend, app_with_backend
from pingcalc.settings import Settings
from tests_support import Tokens

URL = "/api/v1/ping"
LOOKUP_TIMEOUT = 0.5


@pytest.fixture
def named(
    make_settings: Callable[..., Settings], dns_server: DnsServer
) -> Callable[..., RecordingApp]:
    """An app (recording backend) resolving through the test's DNS server."""

    def build(**overrides: Any) -> RecordingApp:
        settings = make_settings(
            ping_resolver=dns_server.url,
            ping_resolve_timeout_seconds=LOOKUP_TIMEOUT,
            **overrides,
        )
        return app_with_backend(settings, RecordingBackend())

    return build


@pytest.fixture
def fake(named: Callable[..., RecordingApp]) -> RecordingApp:
    return named()


@pytest.fixture
def api(fake: RecordingApp, tokens: Tokens) -> Iterator[TestClient]:
    """A client of `fake` that sends the `pinger` token with every request."""
    headers = tokens.header("pinger")
    with TestClient(fake.app, raise_server_exceptions=False, headers=headers) as client:
        yield client


@pytest.mark.parametrize(
    ("request_body", "address", "asked", "resolved"),
    [
        pytest.param(
            {"target": "Good.Test", "count": 2},
            "127.0.0.1",
            ["A", "AAAA"],
            ["127.0.0.1", "::1"],
            id="any-family",
        ),
        pytest.param(
            {"target": "good.test", "family": 6, "count": 2},
            "::1",
            ["AAAA"],
            ["::1"],
            id="family-6",
        ),
    ],
)
def test_name_is_resolved_once_per_family_asked_and_the_answer_names_name_and_address(
    request_body: dict[str, Any],
    address: str,
    asked: list[str],
    resolved: list[str],
    api: TestClient,
    fake: RecordingApp,
    dns_server: DnsServer,
) -> None:
    """TM-31: one lookup per family, and `family: 6` restricts the lookup itself, not only the
    choice of address; the result and the audit record carry name and address."""
    dns_server.add_loopbacks("good.test")
    response = api.post(URL, json=request_body)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["target"], body["name"], body["family"], body["received"]) == (
        address,
        "good.test",
        ip_address(address).version,
        2,
    )
    assert list(body)[:2] == ["target", "name"]
    assert fake.backend.pinged() == [address]
    assert sorted(dns_server.asked()) == [("good.test", rdtype) for rdtype in asked]
    [record] = fake.audit_events("ping")
    assert (record["outcome"], record["target"], record["name"]) == (
        "success",
        address,
        "good.test",
    )
    assert record["resolved"] == resolved


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"target": "127.0.0.1", "family": 6}, "family: 127.0.0.1 is an IPv4 address, not IPv6"),
        ({"target": "::1", "family": 4}, "family: ::1 is an IPv6 address, not IPv4"),
        ({"target": "127.0.0.1", "family": 5}, "family: Input should be 4 or 6"),
        ({"target": "127.0.0.1", "family": "4"}, "family: Input should be 4 or 6"),
        ({"target": "127.0.0.1", "family": 4.0}, "family: Input should be 4 or 6"),
        ({"target": "127.0.0.1", "family": True}, "family: Input should be 4 or 6"),
        ({"target": "127.0.0.1", "count": 6}, "count: between 1 and 5 echo requests per ping"),
    ],
)
def test_bad_family_or_count_is_a_422_validation_problem(
    body: dict[str, Any], detail: str, api: TestClient, fake: RecordingApp
) -> None:
    """A family that does not fit, or a count out of bounds, is refused before any echo."""
    response = api.post(URL, json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:pingcalc:problem:validation" and problem["detail"] == detail
    assert problem["errors"][0]["field"] in ("family", "count")
    assert fake.backend.pinged() == []
    [record] = fake.audit_events("ping_rejected")
    assert record["reason"] in ("invalid_request", "invalid_body")


@pytest.mark.parametrize(
    ("records", "address", "category"),
    [
        ({"A": ["10.0.0.7"]}, "10.0.0.7", "private"),
        ({"A": ["93.184.216.34", "10.1.2.3"]}, "10.1.2.3", "private"),
        ({"A": ["127.0.0.1"], "AAAA": ["fd00::1"]}, "fd00::1", "private"),
        ({"A": ["169.254.169.254"]}, "169.254.169.254", "link-local"),
    ],
)
def test_name_with_any_internal_address_is_403_naming_that_address(
    records: dict[str, list[str]],
    address: str,
    category: str,
    api: TestClient,
    fake: RecordingApp,
    dns_server: DnsServer,
) -> None:
    """TM-32: one refused address refuses the whole name; the problem says which and why."""
    for rdtype, values in records.items():
        dns_server.add("inside.test", rdtype, *values)
    response = api.post(URL, json={"target": "inside.test"})
    assert response.status_code == 403
    problem = response.json()
    assert problem["type"] == "urn:pingcalc:problem:target-denied"
    assert (problem["name"], problem["address"], problem["category"]) == (
        "inside.test",
        address,
        category,
    )
    assert problem["detail"].startswith(f"inside.test resolves to {address}, which is ")
    assert fake.backend.pinged() == []
    [record] = fake.audit_events("ping_rejected")
    assert (record["reason"], record["name"], record["address"], record["category"]) == (
        "target_denied",
        "inside.test",
        address,
        category,
    )
    assert record["target"] == "inside.test"


def test_cname_chain_to_the_metadata_address_is_403(
    api: TestClient, fake: RecordingApp, dns_server: DnsServer
) -> None:
    """TM-32: a chain of aliases is judged by the addresses it ends at."""
    dns_server.alias("innocent.test", "hop.test")
    dns_server.alias("hop.test", "metadata.test")
    dns_server.add("metadata.test", "A", "169.254.169.254")
    response = api.post(URL, json={"target": "innocent.test", "family": 4})
    assert response.status_code == 403
    assert response.json()["address"] == "169.254.169.254" and fake.backend.pinged() == []


def test_rebinding_name_is_pinged_at_the_checked_address_and_refused_next_time(
    api: TestClient, fake: RecordingApp, dns_server: DnsServer
) -> None:
    """TM-31: the first answer is checked and pinged; the flipped answer is never used."""
    dns_server.add("rebind.test", "A", "93.184.216.34")
    dns_server.then("rebind.test", "A", "169.254.169.254")
    body = {"target": "rebind.test", "family": 4, "count": 3}
    first = api.post(URL, json=body)
    assert first.status_code == 200 and first.json()["target"] == "93.184.216.34"
    assert dns_server.asked("rebind.test") == [("rebind.test", "A")]  # once, for 3 echoes
    second = api.post(URL, json=body)
    assert second.status_code == 403 and second.json()["address"] == "169.254.169.254"
    assert fake.backend.pinged() == ["93.184.216.34"]


@pytest.mark.parametrize(
    ("setup", "status", "kind", "detail"),
    [
        ("nxdomain", 404, "name-not-found", "lost.test does not exist"),
        ("silent", 504, "resolver-timeout", "the lookup of lost.test took longer than 0.5 s"),
        ("servfail", 502, "resolver-failed", "the name server failed to answer for lost.test"),
    ],
)
def test_lookup_failures_are_problems_without_resolver_text(
    setup: str,
    status: int,
    kind: str,
    detail: str,
    api: TestClient,
    fake: RecordingApp,
    dns_server: DnsServer,
) -> None:
    """TM-33: unknown 404, timeout 504, failure 502; fixed text, audited, nothing pinged."""
    if setup == "silent":
        dns_server.silent.add("lost.test")
    elif setup == "servfail":
        dns_server.failing.add("lost.test")
    started = time.monotonic()
    response = api.post(URL, json={"target": "lost.test"})
    assert time.monotonic() - started < LOOKUP_TIMEOUT + 1.5
    assert response.status_code == status
    problem = response.json()
    assert (problem["type"], problem["detail"], problem["name"]) == (
        f"urn:pingcalc:problem:{kind}",
        detail,
        "lost.test",
    )
    assert str(dns_server.port) not in response.text and fake.backend.pinged() == []
    [record] = fake.audit_events("ping_rejected")
    assert (record["reason"], record["name"]) == (kind.replace("-", "_"), "lost.test")


def test_lookups_past_the_cap_are_503_with_retry_after_at_once(
    named: Callable[..., RecordingApp], dns_server: DnsServer, tokens: Tokens
) -> None:
    """TM-33: with one lookup slot busy on a silent name, the next name is refused at once."""
    dns_server.silent.add("slow.test")
    dns_server.add("good.test", "A", "127.0.0.1")
    fake = named(ping_max_lookups=1)

    async def scenario() -> tuple[httpx.Response, httpx.Response, float]:
        transport = httpx.ASGITransport(app=fake.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = tokens.header("pinger")
            slow = asyncio.ensure_future(
                client.post(URL, json={"target": "slow.test"}, headers=headers)
            )
            await asyncio.sleep(0.1)
            started = time.monotonic()
            busy = await client.post(URL, json={"target": "good.test"}, headers=headers)
            seconds = time.monotonic() - started
            return await slow, busy, seconds

    slow, busy, seconds = asyncio.run(scenario())
    assert slow.status_code == 504
    assert busy.status_code == 503 and seconds < LOOKUP_TIMEOUT / 2
    assert busy.headers["retry-after"] == "1" and busy.json()["retry_after"] == 1
    assert busy.json()["type"] == "urn:pingcalc:problem:resolver-busy"
    assert dns_server.asked("good.test") == []  # refused without a query


def test_idna_name_is_asked_and_answered_in_its_ascii_form(
    api: TestClient, fake: RecordingApp, dns_server: DnsServer
) -> None:
    """TM-34: `Bücher.test` is looked up as `xn--bcher-kva.test`, the form the answer names."""
    dns_server.add("xn--bcher-kva.test", "A", "127.0.0.1")
    response = api.post(URL, json={"target": "Bücher.test", "family": 4})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "xn--bcher-kva.test"
    assert dns_server.asked() == [("xn--bcher-kva.test", "A")]


@pytest.mark.parametrize(
    "target",
    ["-f", "$(id)", "a..b", "a" * 300, "0x7f.1", "good.test.", "good.test;id", "g\u00adood.test"],
    ids=lambda v: ascii(v)[:20],
)
def test_hostile_names_are_422_before_any_query(
    target: str, api: TestClient, fake: RecordingApp, dns_server: DnsServer
) -> None:
    """TM-34: option text, shell text, malformed, overlong and IP-like names never reach DNS."""
    dns_server.add("good.test", "A", "127.0.0.1")
    response = api.post(URL, json={"target": target})
    assert response.status_code == 422
    assert response.json()["type"] == "urn:pingcalc:problem:invalid-target"
    assert dns_server.queries == [] and fake.backend.pinged() == []
    [record] = fake.audit_events("ping_rejected")
    assert record["reason"] == "invalid_target" and len(record["target"]) <= 64


def test_openapi_documents_names_family_and_the_new_problems(api: TestClient) -> None:
    """The document lists family, the name in the result, and 404, 502 and 504 answers."""
    document = api.get("/openapi.json").json()
    operation = document["paths"][URL]["post"]
    schemas = document["components"]["schemas"]
    request = schemas["PingRequest"]["properties"]
    assert request["family"]["anyOf"][0]["enum"] == [4, 6]
    assert "host name" in request["target"]["description"]
    assert "name" in schemas["PingResponse"]["properties"]
    assert {"200", "403", "404", "422", "429", "502", "503", "504"} <= set(operation["responses"])
    for status in ("404", "502", "504"):
        content = operation["responses"][status]["content"]
        assert list(content) == ["application/problem+json"]
