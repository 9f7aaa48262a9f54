"""Admission attacks on a real server: lock-outs, address rotation, proxies, padding (TM-09, TM-21).

The order the gate enforces (address -> token -> failures of a failed token only -> scope ->
audit -> token rate) is what these attacks probe from outside, through `pingcalc serve`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import httpx
import pytest

from tests_support import (
    LiveServer,
    Tokens,
    audit_records,
    log_records,
    raw_http,
    rss_mib,
    server_address,
)

BEHIND_PROXY = {"PINGCALC_FORWARDED_ALLOW_IPS": "127.0.0.1"}
PROTECTED = "/api/v1/calculate"
CALC = {"expression": "6*7"}


def calc(client: httpx.Client, token: str | None, forwarded: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return client.post(PROTECTED, json=CALC, headers=headers)


def test_failed_logins_never_lock_out_a_valid_token_behind_a_shared_proxy(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """25 bad tokens from one client refuse only that client's further guesses; valid tokens,
    from it and from others behind the same ingress, keep getting 200 (T1110, AC-7)."""
    server = server_factory(env={**BEHIND_PROXY, "PINGCALC_AUTH_FAILURES_PER_IP": "20/minute"})
    attacker, victim = "203.0.113.5", "198.51.100.7"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        codes = [calc(client, f"pc_guess{n:040d}", attacker).status_code for n in range(25)]
        assert codes == [401] * 20 + [429] * 5
        assert calc(client, tokens.secrets["calc"], victim).status_code == 200
        assert calc(client, tokens.secrets["calc"], attacker).status_code == 200
        assert calc(client, "pc_another_guess", victim).status_code == 401
    limited = [r for r in audit_records(server.log_text()) if r["reason"] == "auth_failure_limit"]
    assert limited and {r["client_ip"] for r in limited} == {attacker}


def test_per_address_limits_count_an_ipv6_64_as_one_client(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """Rotating through addresses of one /64 does not reset the per-address budget; another
    /64 and an IPv4 client are unaffected (T1499, TM-09)."""
    server = server_factory(
        env={
            **BEHIND_PROXY,
            "PINGCALC_RATE_LIMIT_PER_IP": "300/minute",
            "PINGCALC_RATE_LIMIT_PER_TOKEN": "100000/minute",
            "PINGCALC_PENALTY_DELAY_SECONDS": "0",
        }
    )
    token = tokens.secrets["calc"]
    base = int(IPv6Address("2001:db8:1:2::"))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # The budget refills at 5 a second while the requests go out: a little over 300 pass.
        codes = []
        for n in range(400):
            codes.append(calc(client, token, str(IPv6Address(base + 7919 * n + 1))).status_code)
            if codes[-1] != 200:
                break
        assert codes[-1] == 429 and 300 <= len(codes) - 1 <= 340, len(codes)
        fresh = calc(client, token, str(IPv6Address(base + 0xFFFF_FFFF_FFFF)))
        assert fresh.status_code == 429 and fresh.json()["reason"] == "ip_rate_limit"
        assert calc(client, token, "2001:db8:1:3::1").status_code == 200
        assert calc(client, token, "192.0.2.44").status_code == 200
        # An IPv4-mapped address is its IPv4 address, not a fresh /64.
        assert calc(client, token, "::ffff:192.0.2.44").status_code == 200


def test_non_ip_text_from_a_trusted_proxy_is_refused_not_logged_as_the_client(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """X-Forwarded-For naming no address is a 400, never an identity in the logs (TM-21)."""
    server = server_factory(env=BEHIND_PROXY)
    hostile = ["evil.example", "1.2.3.4; rm -rf /", "unknown", "fe80::1%eth0", "", "1.2.3"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for value in hostile:
            response = calc(client, tokens.secrets["calc"], value)
            assert response.status_code == 400, value
            assert response.json()["type"].endswith("bad-forwarded-for")
        # Text the client put left of what the proxy appended is never read.
        assert calc(client, tokens.secrets["calc"], "evil.example, 192.0.2.9").status_code == 200
    addresses = {r.get("client_ip") for r in log_records(server.log_text())}
    assert not addresses & set(hostile)
    assert "192.0.2.9" in addresses


def _chunked_with_trailer(token: str, forwarded: str, trailer: str) -> bytes:
    """A calculation whose head carries the proxy's X-Forwarded-For and whose chunked body
    ends with a trailer naming another address (what a proxy passes through untouched)."""
    body = json.dumps(CALC).encode()
    return (
        b"POST " + PROTECTED.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"X-Forwarded-For: "
        + forwarded.encode()
        + b"\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n"
        b"X-Forwarded-For: " + trailer.encode() + b"\r\n\r\n"
    )


def test_a_trailer_cannot_choose_the_client_address(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """X-Forwarded-For in a chunked body's trailer is never read: behind a proxy that sets
    the head's value, a client rotating trailer addresses stays one client for the failure
    limit and in the audit trail (the stack's attack pass: 60 guesses, 60 addresses; TM-21)."""
    server = server_factory(env={**BEHIND_PROXY, "PINGCALC_AUTH_FAILURES_PER_IP": "5/minute"})
    client_ip = "203.0.113.5"
    codes = []
    for n in range(8):
        guess = _chunked_with_trailer(f"pc_guess{n:040d}", client_ip, f"198.51.100.{n + 1}")
        codes.append(int(raw_http(server, guess).split(b" ", 2)[1]))
    assert codes == [401] * 5 + [429] * 3
    valid = raw_http(server, _chunked_with_trailer(tokens.secrets["calc"], client_ip, "192.0.2.1"))
    assert valid.startswith(b"HTTP/1.1 200") and b'"result":42' in valid
    records = [r for r in log_records(server.log_text()) if r.get("path") == PROTECTED]
    assert len([r for r in records if r["event"] == "access"]) == 9
    assert {r["client_ip"] for r in records} == {client_ip}


def test_an_untrusted_peer_cannot_choose_its_address(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """Without trusted proxies, X-Forwarded-For is ignored: the peer is the client (T1090)."""
    server = server_factory(env={"PINGCALC_AUTH_FAILURES_PER_IP": "3/minute"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(3):
            assert calc(client, f"pc_guess{n:040d}", f"192.0.2.{n}").status_code == 401
        assert calc(client, "pc_guess_again", "192.0.2.200").status_code == 429
        assert calc(client, tokens.secrets["calc"], "192.0.2.201").status_code == 200
    addresses = {r["client_ip"] for r in audit_records(server.log_text()) if r["reason"]}
    assert addresses == {"127.0.0.1"}


def test_ping_authenticates_before_reading_the_body(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """An unauthenticated malformed ping body gets 401, is audited and counted as a failure:
    it cannot probe the parser or escape the failure limit (TM-01, TM-09)."""
    server = server_factory(env={"PINGCALC_AUTH_FAILURES_PER_IP": "3/minute"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        bodies = [b"{not json", b'{"target": 5}', b"[]"]
        for body in bodies:
            response = client.post(
                "/api/v1/ping", content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 401
        response = client.post("/api/v1/ping", content=b"{", headers={"Authorization": "Bearer x"})
        assert response.status_code == 429  # the three failures counted
        ok = client.post(
            "/api/v1/ping",
            json={"target": "127.0.0.1", "count": 5},
            headers=tokens.header("pinger"),
        )
        assert ok.status_code in (200, 503)  # 503 only if this host cannot ping at all
        malformed = client.post(
            "/api/v1/ping",
            content=b"{not json",
            headers=tokens.header("pinger") | {"Content-Type": "application/json"},
        )
        assert malformed.status_code == 422
    failures = [r for r in audit_records(server.log_text()) if r["event"] == "auth_failure"]
    assert len(failures) == 3


def test_padding_the_authorization_header_does_not_skip_the_penalty_box(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """A boxed token stays boxed however its header is padded: refused at the edge, with no
    audit record per request (one parser for the box and authentication, TM-09)."""
    server = server_factory(
        env={"PINGCALC_RATE_LIMIT_PER_TOKEN": "3/minute", "PINGCALC_PENALTY_DELAY_SECONDS": "0"}
    )
    secret = tokens.secrets["calc"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert [calc(client, secret).status_code for _ in range(4)] == [200, 200, 200, 429]
        records_before = len(audit_records(server.log_text()))
        for padding in (b" " * 250, b"\t" * 10, b" " * 3):
            answer = raw_http(
                server,
                b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nAuthorization: Bearer" + padding + b" " + secret.encode() + b"  \r\n"
                b"Content-Length: 21\r\nConnection: close\r\n\r\n" + json.dumps(CALC).encode(),
            )
            assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
            assert b"token_rate_limit" in answer
        assert len(audit_records(server.log_text())) == records_before
        assert calc(client, tokens.secrets["full"]).status_code == 200


async def _flood_distinct_addresses(host: str, port: int, count: int, connections: int) -> int:
    """`count` requests, each forwarded for a distinct address, over keep-alive connections."""

    async def worker(first: int) -> int:
        reader, writer = await asyncio.open_connection(host, port)
        answered = 0
        for n in range(first, count, connections):
            address = IPv4Address(int(IPv4Address("10.0.0.0")) + n)
            writer.write(
                b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pc_x\r\n"
                b"Content-Length: 0\r\nX-Forwarded-For: " + str(address).encode() + b"\r\n\r\n"
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            answered += 1
        writer.close()
        return answered

    results = await asyncio.wait_for(
        asyncio.gather(*(worker(i) for i in range(connections))), timeout=240
    )
    return sum(results)


@pytest.mark.ping  # expects /readyz 'ready', which needs a ping backend
def test_limiter_memory_stays_bounded_whatever_the_number_of_clients(
    server_factory: Callable[..., LiveServer],
) -> None:
    """30,000 distinct forwarded addresses (each counted by the per-address and the failure
    limits) grow the server by less than 16 MB (T1499)."""
    server = server_factory(
        env={**BEHIND_PROXY, "PINGCALC_ACCESS_LOG": "false", "PINGCALC_LOG_LEVEL": "warning"}
    )
    host, port = server_address(server)
    asyncio.run(_flood_distinct_addresses(host, port, 2000, 8))  # warm caches and allocators
    before = rss_mib(server.process.pid)
    answered = asyncio.run(_flood_distinct_addresses(host, port, 30_000, 16))
    grown = rss_mib(server.process.pid) - before
    assert answered == 30_000
    assert grown < 16, f"RSS grew {grown:.1f} MiB for 30,000 addresses"
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    assert json.loads(httpx.get(server.url + "/readyz", timeout=5).text)["status"] == "ready"
