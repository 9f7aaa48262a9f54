"""Attacks through host names, against a real DNS server on loopback that the tests control.

The engine tests resolve through `NameServerResolver` (what `PINGCALC_PING_RESOLVER=dns://...`
selects) and "ping" with the recording backend, so no packet leaves: the addresses here are
only ever judged. The server tests run `pingcalc serve` with that setting: the only echoes
they cause go to 127.0.0.1. TM-31 rebinding, TM-32 internal names, TM-33 resolver abuse,
TM-34 hostile names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest

from dns_server import DnsServer
from ping_fakes import RecordingBackend
from pingcalc.ping import (
    Family,
    NameDeniedError,
    NameNotFoundError,
    NameServerResolver,
    PingError,
    PingPlan,
    PingResult,
    ResolverBusyError,
    ResolverFailedError,
    ResolverTimeoutError,
    TargetDeniedError,
    TargetPolicy,
    TargetSyntaxError,
    resolve_target,
)
from pingcalc.ping.selection import find_ping
from pingcalc.settings import Settings
from tests_support import LiveServer, audit_records

PAYLOAD_FILE = Path(__file__).with_name("ping_payloads.txt")
# Valid host names in the IP-target corpus: with names enabled they are legitimate targets.
PLAIN_NAMES = {"localhost", "example.com"}
TIMEOUT = 0.5


def _resolver(server: DnsServer, *, timeout: float = TIMEOUT, cap: int = 8) -> NameServerResolver:
    return NameServerResolver(
        ip_address("127.0.0.1"), server.port, timeout=timeout, max_in_flight=cap
    )


def _request(
    text: str,
    server: DnsServer,
    backend: RecordingBackend,
    settings: Settings,
    *,
    family: Family | None = None,
) -> PingResult:
    """One ping request as the route and the CLI run it: plan, resolve once, ping."""

    async def run() -> PingResult:
        plan = PingPlan.from_settings(settings, count=2, family=family)
        destination = await resolve_target(
            text, policy=TargetPolicy(), resolver=_resolver(server), family=plan.family
        )
        return await plan.run(backend, destination)

    return asyncio.run(run())


def test_legitimate_name_is_resolved_once_and_its_address_pinged(
    dns_server: DnsServer, settings: Settings
) -> None:
    """The control case: a name with a loopback address is pinged, the result names both."""
    dns_server.add_loopbacks("good.test")
    backend = RecordingBackend()
    result = _request("Good.Test", dns_server, backend, settings)
    assert backend.pinged() == ["127.0.0.1"]  # IPv4 preferred
    assert sorted(dns_server.asked("good.test")) == [("good.test", "A"), ("good.test", "AAAA")]
    body = result.to_dict()
    assert (body["target"], body["name"], body["received"]) == ("127.0.0.1", "good.test", 2)


def test_family_6_pings_the_ipv6_address_and_asks_only_for_aaaa(
    dns_server: DnsServer, settings: Settings
) -> None:
    """`family: 6` restricts the lookup itself, not only the choice."""
    dns_server.add_loopbacks("good.test")
    backend = RecordingBackend()
    _request("good.test", dns_server, backend, settings, family=6)
    assert backend.pinged() == ["::1"]
    assert dns_server.asked() == [("good.test", "AAAA")]


def test_name_with_a_private_address_is_refused_and_nothing_is_sent(
    dns_server: DnsServer, settings: Settings
) -> None:
    """TM-32: a name pointing inside (10/8) is refused naming the address; no echo at all."""
    dns_server.add("internal.test", "A", "10.0.0.7")
    backend = RecordingBackend()
    with pytest.raises(NameDeniedError) as caught:
        _request("internal.test", dns_server, backend, settings)
    assert caught.value.name == "internal.test" and caught.value.category == "private"
    assert "internal.test resolves to 10.0.0.7, which is private" in str(caught.value)
    assert backend.calls == []


@pytest.mark.parametrize(
    ("records", "denied"),
    [
        ({"A": ["93.184.216.34", "10.1.2.3"]}, "10.1.2.3"),
        ({"A": ["10.1.2.3", "93.184.216.34"]}, "10.1.2.3"),
        ({"A": ["93.184.216.34"], "AAAA": ["fd00::1"]}, "fd00::1"),
        ({"A": ["127.0.0.1"], "AAAA": ["::ffff:192.168.1.1"]}, "192.168.1.1"),
    ],
)
def test_name_mixing_public_and_internal_addresses_is_refused_naming_the_internal_one(
    records: dict[str, list[str]], denied: str, dns_server: DnsServer, settings: Settings
) -> None:
    """TM-32: one internal address in the answer refuses the whole name, whatever its order."""
    for rdtype, values in records.items():
        dns_server.add("mixed.test", rdtype, *values)
    backend = RecordingBackend()
    with pytest.raises(NameDeniedError) as caught:
        _request("mixed.test", dns_server, backend, settings)
    assert str(caught.value.address) == denied and denied in str(caught.value)
    assert backend.calls == []


def test_rebinding_name_is_resolved_once_and_the_checked_address_is_the_one_pinged(
    dns_server: DnsServer, settings: Settings
) -> None:
    """TM-31: the answer flips to the metadata address after the check; it is never used."""
    dns_server.add("rebind.test", "A", "93.184.216.34")
    dns_server.then("rebind.test", "A", "169.254.169.254")
    backend = RecordingBackend()

    async def streamed() -> list[object]:
        plan = PingPlan.from_settings(settings, count=3, family=4)
        destination = await resolve_target(
            "rebind.test", policy=TargetPolicy(), resolver=_resolver(dns_server), family=4
        )
        async with contextlib.aclosing(plan.stream(backend, destination)) as events:
            return [item async for item in events]

    items = asyncio.run(streamed())
    assert backend.pinged() == ["93.184.216.34"]
    assert dns_server.asked("rebind.test") == [("rebind.test", "A")]  # exactly one lookup
    final = items[-1]
    assert isinstance(final, PingResult) and final.target == "93.184.216.34"
    # The next request looks the name up afresh, sees the internal address and refuses it.
    with pytest.raises(NameDeniedError, match=r"169\.254\.169\.254"):
        _request("rebind.test", dns_server, backend, settings, family=4)
    assert len(backend.calls) == 1 and len(dns_server.asked("rebind.test")) == 2


def test_cname_chain_to_the_metadata_address_is_refused(
    dns_server: DnsServer, settings: Settings
) -> None:
    """TM-32: a CNAME chain is judged by its final addresses: 169.254.169.254 is link-local."""
    dns_server.alias("innocent.test", "hop.test")
    dns_server.alias("hop.test", "metadata.test")
    dns_server.add("metadata.test", "A", "169.254.169.254")
    backend = RecordingBackend()
    with pytest.raises(NameDeniedError) as caught:
        _request("innocent.test", dns_server, backend, settings, family=4)
    assert str(caught.value.address) == "169.254.169.254"
    assert caught.value.category == "link-local" and caught.value.name == "innocent.test"
    assert backend.calls == []
    # Control: a chain to an allowed address is followed and pinged.
    dns_server.alias("www.test", "good.test")
    dns_server.add("good.test", "A", "127.0.0.1")
    result = _request("www.test", dns_server, backend, settings, family=4)
    assert (result.target, result.name) == ("127.0.0.1", "www.test")


def test_silent_name_server_is_a_timeout_error_within_the_bound(
    dns_server: DnsServer, settings: Settings
) -> None:
    """TM-33: a name server that never answers costs at most the lookup timeout."""
    dns_server.silent.add("tarpit.test")
    backend = RecordingBackend()
    started = time.monotonic()
    with pytest.raises(ResolverTimeoutError) as caught:
        _request("tarpit.test", dns_server, backend, settings)
    assert time.monotonic() - started < TIMEOUT + 1.5
    assert caught.value.name == "tarpit.test" and dns_server.asked("tarpit.test")
    assert backend.calls == []


def test_unknown_name_is_name_not_found(dns_server: DnsServer, settings: Settings) -> None:
    """An NXDOMAIN is a typed not-found error with a fixed message (404-style)."""
    with pytest.raises(NameNotFoundError, match=r"^nosuch\.test does not exist$"):
        _request("nosuch.test", dns_server, RecordingBackend(), settings)


def test_failing_name_server_is_reported_without_its_text(
    dns_server: DnsServer, settings: Settings
) -> None:
    """TM-33: SERVFAIL becomes a fixed message; the resolver's own text never reaches a client."""
    dns_server.failing.add("broken.test")
    with pytest.raises(ResolverFailedError) as caught:
        _request("broken.test", dns_server, RecordingBackend(), settings)
    assert str(caught.value) == "the name server failed to answer for broken.test"
    assert "127.0.0.1" not in str(caught.value) and str(dns_server.port) not in str(caught.value)


def test_lookup_flood_is_refused_at_the_cap_without_queueing(dns_server: DnsServer) -> None:
    """TM-33: past `max_in_flight` lookups a name is refused at once; nothing waits in a queue."""
    dns_server.silent.add("slow.test")
    resolver = _resolver(dns_server, timeout=2.0, cap=2)
    policy = TargetPolicy()

    async def flood() -> tuple[float, int]:
        waiting = [
            asyncio.ensure_future(
                resolve_target("slow.test", policy=policy, resolver=resolver, family=4)
            )
            for _ in range(2)
        ]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(ResolverBusyError):
            await resolve_target("slow.test", policy=policy, resolver=resolver, family=4)
        refused_after = time.monotonic() - started
        queries = len(dns_server.asked("slow.test"))
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        assert resolver.in_flight == 0
        return refused_after, queries

    refused_after, queries = asyncio.run(flood())
    assert refused_after < 0.5 and queries == 2  # the third was never sent


def test_non_ascii_name_resolves_through_its_punycode_form(
    dns_server: DnsServer, settings: Settings
) -> None:
    """IDNA: `Bücher.test` is asked as `xn--bcher-kva.test`, and the result names that form."""
    dns_server.add("xn--bcher-kva.test", "A", "127.0.0.1")
    backend = RecordingBackend()
    result = _request("Bücher.test", dns_server, backend, settings, family=4)
    assert dns_server.asked() == [("xn--bcher-kva.test", "A")]
    assert (result.target, result.name) == ("127.0.0.1", "xn--bcher-kva.test")


HOSTILE_NAMES = [
    "-f",
    "-c 100000 localhost",
    "$(id)",
    "`id`.test",
    "a..b",
    "a" * 300,
    "0x7f.1",
    "127.1",
    "2130706433",
    "0177.0.0.1",
    "good.test; id",
    "good test",
    "good.test\n",
    "good.test\r\nX: 1",
    "good\x00.test",
    "good.test.",
    "g\u00adood.test",
    "\uff0d\uff46",
    "loc\u3164alhost",
    "loc\ufe0falhost",
]


def _corpus() -> list[str]:
    lines = PAYLOAD_FILE.read_text(encoding="utf-8").splitlines()
    payloads = [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]
    return [p for p in payloads if p not in PLAIN_NAMES]


@pytest.mark.parametrize("text", HOSTILE_NAMES + _corpus(), ids=lambda v: ascii(v)[:30])
def test_hostile_targets_are_refused_before_any_query(
    text: str, dns_server: DnsServer, settings: Settings
) -> None:
    """TM-34: options, shell text, IP-like and malformed names never reach the DNS server."""
    dns_server.add("good.test", "A", "127.0.0.1")
    backend = RecordingBackend()
    with pytest.raises(PingError) as caught:
        _request(text, dns_server, backend, settings)
    assert isinstance(caught.value, TargetSyntaxError | TargetDeniedError)
    assert dns_server.queries == [] and backend.calls == []


# --- the same attacks through the real server, resolver selected by PINGCALC_PING_RESOLVER -----


def _start_named_server(
    server_factory: Callable[..., LiveServer], dns_server: DnsServer, lookup_timeout: float
) -> LiveServer:
    """`pingcalc serve` asking only the test's DNS server, giving up on a lookup after
    `lookup_timeout` s; echoes (to loopback only) by `ping`."""
    if find_ping() is None:
        pytest.skip("no ping binary (install iputils-ping)")
    return server_factory(
        env={
            "PINGCALC_PING_RESOLVER": dns_server.url,
            "PINGCALC_PING_RESOLVE_TIMEOUT_SECONDS": str(lookup_timeout),
            "PINGCALC_PING_BACKEND": "subprocess",
        }
    )


@pytest.fixture
def named_server(server_factory: Callable[..., LiveServer], dns_server: DnsServer) -> LiveServer:
    return _start_named_server(server_factory, dns_server, TIMEOUT)


def _ping(server: LiveServer, body: dict[str, object]) -> httpx.Response:
    with server.client("pinger") as client:
        return client.post("/api/v1/ping", json=body)


def _audited(server: LiveServer, event: str) -> list[dict[str, object]]:
    return [r for r in audit_records(server.log_text()) if r["event"] == event]


def test_server_pings_a_rebinding_name_once_at_its_checked_loopback_address(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-31 over HTTP: one lookup per request; the checked address is pinged, the flip refused."""
    dns_server.add("rebind.test", "A", "127.0.0.1")
    dns_server.then("rebind.test", "A", "169.254.169.254")
    first = _ping(named_server, {"target": "rebind.test", "family": 4, "count": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["target"], body["name"], body["received"]) == ("127.0.0.1", "rebind.test", 2)
    assert dns_server.asked("rebind.test") == [("rebind.test", "A")]
    second = _ping(named_server, {"target": "rebind.test", "family": 4, "count": 2})
    assert second.status_code == 403
    assert (second.json()["address"], second.json()["category"]) == (
        "169.254.169.254",
        "link-local",
    )
    [pinged] = _audited(named_server, "ping")
    assert (pinged["name"], pinged["target"], pinged["received"]) == ("rebind.test", "127.0.0.1", 2)
    [refused] = _audited(named_server, "ping_rejected")
    assert (refused["name"], refused["address"]) == ("rebind.test", "169.254.169.254")


def test_server_refuses_names_that_point_inside_naming_the_address(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-32 over HTTP: private, mixed and CNAME-to-metadata names are 403; nothing is pinged."""
    dns_server.add("private.test", "A", "10.0.0.7")
    dns_server.add("mixed.test", "A", "127.0.0.1", "192.168.1.1")
    dns_server.alias("innocent.test", "metadata.test")
    dns_server.add("metadata.test", "A", "169.254.169.254")
    dns_server.add("good.test", "A", "127.0.0.1")
    for name, address in (
        ("private.test", "10.0.0.7"),
        ("mixed.test", "192.168.1.1"),
        ("innocent.test", "169.254.169.254"),
    ):
        response = _ping(named_server, {"target": name, "family": 4, "count": 1})
        assert response.status_code == 403, name
        problem = response.json()
        assert (problem["name"], problem["address"]) == (name, address)
        assert f"{name} resolves to {address}" in problem["detail"]
    assert _audited(named_server, "ping") == []
    assert len(_audited(named_server, "ping_rejected")) == 3
    # The legitimate request still works on the same server.
    assert _ping(named_server, {"target": "good.test", "count": 1}).status_code == 200


def test_server_reports_lookup_failures_as_problems_without_resolver_text(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-33 over HTTP: unknown 404, silent 504 within the bound, SERVFAIL 502; all audited."""
    dns_server.silent.add("tarpit.test")
    dns_server.failing.add("broken.test")
    started = time.monotonic()
    silent = _ping(named_server, {"target": "tarpit.test"})
    assert silent.status_code == 504 and time.monotonic() - started < TIMEOUT + 1.5
    unknown = _ping(named_server, {"target": "nosuch.test"})
    broken = _ping(named_server, {"target": "broken.test"})
    assert (unknown.status_code, broken.status_code) == (404, 502)
    assert unknown.json()["type"] == "urn:pingcalc:problem:name-not-found"
    for response in (silent, unknown, broken):
        assert str(dns_server.port) not in response.text and "127.0.0.1" not in response.text
    reasons = [r["reason"] for r in _audited(named_server, "ping_rejected")]
    assert reasons == ["resolver_timeout", "name_not_found", "resolver_failed"]


def test_server_resolves_idna_names_in_their_ascii_form(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-34 over HTTP: `Bücher.test` is asked as `xn--bcher-kva.test` and pinged at 127.0.0.1."""
    dns_server.add("xn--bcher-kva.test", "A", "127.0.0.1")
    response = _ping(named_server, {"target": "Bücher.test", "family": 4, "count": 1})
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["target"]) == (
        "xn--bcher-kva.test",
        "127.0.0.1",
    )
    assert dns_server.asked() == [("xn--bcher-kva.test", "A")]


def test_server_refuses_hostile_names_before_any_query(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-34 over HTTP: option, shell, malformed and overlong names never reach the DNS server."""
    dns_server.add("good.test", "A", "127.0.0.1")
    for text in HOSTILE_NAMES:
        response = _ping(named_server, {"target": text})
        assert response.status_code == 422, text
        assert response.json()["type"] == "urn:pingcalc:problem:invalid-target", text
    assert dns_server.queries == [] and _audited(named_server, "ping") == []
    assert len(_audited(named_server, "ping_rejected")) == len(HOSTILE_NAMES)


# --- the attack pass on host names: fairness, order, answer size, localhost, invisibles ------

SLOW_LOOKUP = 2.0  # seconds a silent name holds its lookup, long enough to overlap a victim


def _slow_server(server_factory: Callable[..., LiveServer], dns_server: DnsServer) -> LiveServer:
    """A named server whose silent names hold a lookup for `SLOW_LOOKUP` seconds."""
    return _start_named_server(server_factory, dns_server, SLOW_LOOKUP)


async def _post_all(
    server: LiveServer, token: str, bodies: list[dict[str, object]]
) -> list[httpx.Response]:
    """Send every body at once with `token` and wait for all the answers."""
    headers = {"Authorization": f"Bearer {server.tokens.secrets[token]}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=15) as client:
        return list(await asyncio.gather(*(client.post("/api/v1/ping", json=b) for b in bodies)))


def test_server_one_token_flooding_slow_names_cannot_starve_another_tokens_lookups(
    server_factory: Callable[..., LiveServer], dns_server: DnsServer
) -> None:
    """TM-33: one token sends 16 silent names at once (every lookup slot of the process); it
    gets its 4 concurrent pings' worth of lookups and 429 for the rest, and another token's
    name is still resolved and pinged meanwhile."""
    server = _slow_server(server_factory, dns_server)
    dns_server.silent.add("tarpit.test")
    dns_server.add("good.test", "A", "127.0.0.1")

    async def scenario() -> tuple[list[httpx.Response], httpx.Response, bool]:
        flood = asyncio.ensure_future(
            _post_all(server, "pinger", [{"target": "tarpit.test", "family": 4}] * 16)
        )
        await asyncio.sleep(SLOW_LOOKUP / 4)
        [victim] = await _post_all(server, "full", [{"target": "good.test", "count": 1}])
        overlapped = not flood.done()  # the victim was answered while the flood was pending
        return await flood, victim, overlapped

    flooded, victim, overlapped = asyncio.run(scenario())
    assert overlapped
    assert victim.status_code == 200, victim.text
    assert (victim.json()["name"], victim.json()["target"]) == ("good.test", "127.0.0.1")
    statuses = sorted(r.status_code for r in flooded)
    assert statuses == [429] * 12 + [504] * 4
    assert {r.json()["reason"] for r in flooded if r.status_code == 429} == {
        "ping_per_token_capacity"
    }
    assert len(dns_server.asked("tarpit.test")) == 4  # 12 names were never looked up


def test_server_token_at_its_ping_cap_is_refused_before_any_lookup(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-33: with its 4 pings in flight, a token's next name is 429 without a DNS query;
    once they are over, the same name is looked up and pinged."""
    dns_server.add("good.test", "A", "127.0.0.1")
    dns_server.add("capped.test", "A", "127.0.0.1")
    long = {"target": "good.test", "count": 5}

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        holding = asyncio.ensure_future(_post_all(named_server, "pinger", [long] * 4))
        await asyncio.sleep(0.4)
        [capped] = await _post_all(named_server, "pinger", [{"target": "capped.test"}])
        return await holding, capped

    held, capped = asyncio.run(scenario())
    assert [r.status_code for r in held] == [200] * 4
    assert capped.status_code == 429 and capped.json()["reason"] == "ping_per_token_capacity"
    assert dns_server.asked("capped.test") == []
    again = _ping(named_server, {"target": "capped.test", "family": 4, "count": 1})
    assert again.status_code == 200 and dns_server.asked("capped.test") == [("capped.test", "A")]
    [refused] = _audited(named_server, "capacity_rejected")
    assert (refused["target"], refused["reason"]) == ("capped.test", "ping_per_token_capacity")


def _audit_lines(server: LiveServer, request_id: str) -> list[str]:
    """The raw audit lines of one request, as the server wrote them."""
    return [
        line
        for line in server.log_text().splitlines()
        if '"log":"audit"' in line and request_id in line
    ]


def test_server_audit_records_of_a_large_answer_stay_small(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-11, TM-33: a name with 32 loopback addresses is pinged and its record lists 8 of them
    and the count; a name with 200 (IPv4-mapped loopback AAAA, the attack) is refused 422
    before any echo, in a record of ordinary size."""
    wide = [f"127.0.0.{n}" for n in range(1, 33)]
    dns_server.add("wide.test", "A", *wide)
    dns_server.add(
        "huge.test", "AAAA", "::1", *(f"::ffff:127.0.{n // 250}.{n % 250 + 1}" for n in range(199))
    )
    pinged = _ping(named_server, {"target": "wide.test", "count": 1})
    assert pinged.status_code == 200, pinged.text
    [record] = _audited(named_server, "ping")
    recorded = record["resolved"]
    assert isinstance(recorded, list) and record["target"] == pinged.json()["target"]
    assert len(recorded) == 8 and recorded[0] == record["target"] and set(recorded) <= set(wide)
    assert record["resolved_count"] == 32
    huge = _ping(named_server, {"target": "huge.test", "family": 6, "count": 1})
    assert huge.status_code == 422, huge.text
    problem = huge.json()
    assert problem["type"] == "urn:pingcalc:problem:too-many-addresses"
    assert problem["detail"] == (
        "huge.test resolves to 200 addresses; a name is pinged only if it has at most 32"
    )
    [refused] = _audited(named_server, "ping_rejected")
    assert (refused["reason"], refused["name"]) == ("too_many_addresses", "huge.test")
    for response in (pinged, huge):
        [line] = _audit_lines(named_server, response.headers["x-request-id"])
        assert len(line) < 1500, len(line)


def test_server_answers_localhost_itself_for_either_family(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-32 (RFC 6761 §6.3): `localhost` and `*.localhost` are the loopback addresses of the
    family asked; the name server, which answers them with other addresses, is never asked."""
    for name in ("localhost", "app.localhost"):
        dns_server.add(name, "A", "10.0.0.1")
        dns_server.add(name, "AAAA", "2001:db8::1")
    for target, family, address in (
        ("localhost", 6, "::1"),
        ("localhost", 4, "127.0.0.1"),
        ("LocalHost", None, "127.0.0.1"),
        ("app.localhost", 6, "::1"),
    ):
        response = _ping(named_server, {"target": target, "family": family, "count": 1})
        assert response.status_code == 200, (target, response.text)
        assert (response.json()["target"], response.json()["received"]) == (address, 1)
    assert dns_server.queries == []
    # A name that only ends in "localhost" as a label's text is an ordinary name.
    dns_server.add("notlocalhost.test", "A", "127.0.0.1")
    response = _ping(named_server, {"target": "notlocalhost.test", "count": 1})
    assert response.status_code == 200 and dns_server.asked("notlocalhost.test")


INVISIBLE_NAMES = [
    "loc\u3164alhost",  # HANGUL FILLER
    "local\u115fhost",  # HANGUL CHOSEONG FILLER
    "loc\u034falhost",  # COMBINING GRAPHEME JOINER
    "loc\ufe0falhost",  # VARIATION SELECTOR-16
    "loc\u180balhost",  # MONGOLIAN FREE VARIATION SELECTOR ONE
    "loc\U000e0100alhost",  # VARIATION SELECTOR-17
    "good\uffa0.test",  # HALFWIDTH HANGUL FILLER
    "good\u17b4.test",  # KHMER VOWEL INHERENT AQ
]


def test_server_refuses_names_with_characters_idna_would_silently_drop(
    named_server: LiveServer, dns_server: DnsServer
) -> None:
    """TM-34: a name holding a character UTS #46 maps to nothing (`loc\\u3164alhost` would
    become `localhost`) is 422 before any lookup; width and case folding still work."""
    dns_server.add("good.test", "A", "127.0.0.1")
    for text in INVISIBLE_NAMES:
        response = _ping(named_server, {"target": text})
        assert response.status_code == 422, text
        problem = response.json()
        assert problem["type"] == "urn:pingcalc:problem:invalid-target", text
        assert "invisible character" in problem["detail"], problem["detail"]
    for text, name in (("\uff47\uff4f\uff4f\uff44.test", "good.test"), ("GOOD.TEST", "good.test")):
        response = _ping(named_server, {"target": text, "family": 4, "count": 1})
        assert response.status_code == 200, response.text
        assert response.json()["name"] == name
    assert dns_server.asked() == [("good.test", "A")] * 2
