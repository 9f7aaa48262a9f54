"""Resolver mechanics: the system resolver's threads, bounds and error mapping (TM-33), the
per-token share of lookup slots, the bound on an answer's size, and localhost (RFC 6761)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from ipaddress import ip_address
from typing import Any

import pytest

from dns_server import DnsServer
from pingcalc.ping import (
    LookupShareError,
    NameNotFoundError,
    NameServerResolver,
    ResolverBusyError,
    ResolverFailedError,
    ResolverTimeoutError,
    SystemResolver,
    TooManyAddressesError,
    check_name,
    parse_resolver_setting,
    select_resolver,
)
from pingcalc.ping.resolvers import MAX_ADDRESSES

LOCALHOST = check_name("localhost")
NAME = check_name("host.test")


def _info(address: str, port: int = 0) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_DGRAM, 17, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_DGRAM, 17, "", (address, port))


def test_system_resolver_answers_a_name_from_etc_hosts(etc_hosts_name: str) -> None:
    """The default resolver is getaddrinfo: /etc/hosts applies (and no packet is sent for it)."""
    resolver = SystemResolver(timeout=2.0, max_in_flight=4)
    name = check_name(etc_hosts_name)
    assert asyncio.run(resolver.resolve(name)) == (ip_address("127.0.0.1"),)
    assert asyncio.run(resolver.resolve(name, family=4)) == (ip_address("127.0.0.1"),)
    assert resolver.threads == 0 and resolver.in_flight == 0 and resolver.slots.held == 0


def test_system_resolver_passes_the_family_and_drops_zone_ids_and_duplicates() -> None:
    """AF_INET/AF_INET6 restrict getaddrinfo; `%zone` is cut, repeated addresses given once."""
    seen: list[int] = []

    def fake(host: str, port: object, family: int = 0, type: int = 0) -> list[tuple[Any, ...]]:
        seen.append(family)
        return [_info("fe80::1%eth0"), _info("127.0.0.1"), _info("127.0.0.1"), _info("::1")]

    resolver = SystemResolver(timeout=1.0, max_in_flight=2, getaddrinfo=fake)
    found = asyncio.run(resolver.resolve(NAME))
    assert found == (ip_address("fe80::1"), ip_address("127.0.0.1"), ip_address("::1"))
    assert asyncio.run(resolver.resolve(NAME, family=6)) == (
        ip_address("fe80::1"),
        ip_address("::1"),
    )
    assert seen == [socket.AF_UNSPEC, socket.AF_INET6]


@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            NameNotFoundError,
            "host.test does not exist or has no address",
        ),
        (
            socket.gaierror(socket.EAI_AGAIN, "resolver 10.9.8.7 timed out"),
            ResolverFailedError,
            "the system resolver could not look up host.test (temporary failure)",
        ),
        (
            socket.gaierror(socket.EAI_FAIL, "10.9.8.7 said REFUSED"),
            ResolverFailedError,
            "the system resolver failed to look up host.test",
        ),
        (
            OSError("nss module /lib/secret.so crashed"),
            ResolverFailedError,
            "the system resolver failed to look up host.test",
        ),
    ],
)
def test_system_resolver_maps_errors_to_fixed_messages(
    error: Exception, expected: type[Exception], message: str
) -> None:
    """TM-33: getaddrinfo's text (which can name internal servers) never reaches a client."""

    def fake(*args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        raise error

    resolver = SystemResolver(timeout=1.0, max_in_flight=2, getaddrinfo=fake)
    with pytest.raises(expected) as caught:
        asyncio.run(resolver.resolve(NAME))
    assert str(caught.value) == message


def test_system_resolver_holds_a_slot_until_the_lookup_thread_returns() -> None:
    """TM-33: a timed-out lookup still counts until getaddrinfo returns: no thread pile-up."""
    release = threading.Event()
    calls: list[str] = []

    def slow(host: str, *args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        calls.append(host)
        release.wait(10)
        return [_info("127.0.0.1")]

    resolver = SystemResolver(timeout=0.2, max_in_flight=1, getaddrinfo=slow)
    try:
        with pytest.raises(ResolverTimeoutError, match=r"longer than 0\.2 s"):
            asyncio.run(resolver.resolve(NAME))
        assert resolver.threads == 1 and resolver.in_flight == 0
        started = time.monotonic()
        with pytest.raises(ResolverBusyError, match="at most 1"):
            asyncio.run(resolver.resolve(NAME))
        assert time.monotonic() - started < 0.5 and len(calls) == 1  # refused, not queued
    finally:
        release.set()
    _wait_for_threads(resolver)
    assert asyncio.run(resolver.resolve(NAME)) == (ip_address("127.0.0.1"),)


def _wait_for_threads(resolver: SystemResolver) -> None:
    for _ in range(100):
        if resolver.threads == 0:
            break
        time.sleep(0.02)
    assert resolver.threads == 0 and resolver.slots.held == 0


def test_one_owner_keeps_at_most_its_share_of_slots_until_its_threads_return() -> None:
    """TM-33: a token whose silent names time out (glibc keeps each thread ~10 s) holds at
    most its share of the slots, counted until the threads return, not only until the
    request ends: its further names are refused at once and another token still resolves."""
    release = threading.Event()
    asked: list[str] = []

    def glibc(host: str, *args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        asked.append(host)
        if host.startswith("drop"):
            release.wait(10)  # a silent name server: glibc retries long after our timeout
        return [_info("127.0.0.1")]

    resolver = SystemResolver(timeout=0.1, max_in_flight=8, max_per_owner=2, getaddrinfo=glibc)
    outcomes: list[str] = []
    try:
        for n in range(8):  # one after the other, as a token at its rate limit sends them
            try:
                asyncio.run(resolver.resolve(check_name(f"drop{n}.test"), owner="mallory"))
            except (ResolverTimeoutError, LookupShareError) as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes == ["ResolverTimeoutError"] * 2 + ["LookupShareError"] * 6
        assert resolver.in_flight == 0  # no request waits any more, but two threads still run
        assert resolver.threads == 2 and resolver.slots.held_by("mallory") == 2
        assert asked == ["drop0.test", "drop1.test"]  # the refused names were never asked
        victim = asyncio.run(resolver.resolve(check_name("good.test"), owner="victim"))
        assert victim == (ip_address("127.0.0.1"),)
        with pytest.raises(LookupShareError, match="already has 2 host name lookups"):
            asyncio.run(resolver.resolve(check_name("good.test"), owner="mallory"))
    finally:
        release.set()
    _wait_for_threads(resolver)
    again = asyncio.run(resolver.resolve(check_name("good.test"), owner="mallory"))
    assert again == (ip_address("127.0.0.1"),)  # the share is back once the threads returned


def test_the_process_cap_still_holds_across_owners() -> None:
    """TM-33: shares do not add up past `max_in_flight`: the process cap refuses with 503-style
    `ResolverBusyError` (not the owner's share error) when every slot is taken."""
    release = threading.Event()

    def stuck(host: str, *args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        release.wait(10)
        return [_info("127.0.0.1")]

    resolver = SystemResolver(timeout=0.1, max_in_flight=3, max_per_owner=2, getaddrinfo=stuck)
    try:
        for owner in ("a", "a", "b"):
            with pytest.raises(ResolverTimeoutError):
                asyncio.run(resolver.resolve(NAME, owner=owner))
        with pytest.raises(ResolverBusyError) as caught:
            asyncio.run(resolver.resolve(NAME, owner="c"))
        assert not isinstance(caught.value, LookupShareError)
        assert str(caught.value) == (
            "too many host name lookups in flight (at most 3); try again shortly"
        )
    finally:
        release.set()
    _wait_for_threads(resolver)


def test_a_name_with_more_addresses_than_the_bound_is_refused() -> None:
    """TM-33: an answer of more than `MAX_ADDRESSES` addresses (thousands of IPv4-mapped
    loopback AAAA, the audit-bloat attack) is refused with the count; one at the bound works."""
    sizes = {"huge.test": MAX_ADDRESSES + 1, "wide.test": MAX_ADDRESSES}

    def answer(host: str, *args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        return [_info(f"::ffff:127.0.0.{n + 1}") for n in range(sizes[host])]

    resolver = SystemResolver(timeout=1.0, max_in_flight=2, getaddrinfo=answer)
    with pytest.raises(TooManyAddressesError) as caught:
        asyncio.run(resolver.resolve(check_name("huge.test")))
    assert caught.value.count == MAX_ADDRESSES + 1 and caught.value.name == "huge.test"
    assert str(caught.value) == (
        f"huge.test resolves to {MAX_ADDRESSES + 1} addresses; a name is pinged only if it "
        f"has at most {MAX_ADDRESSES}"
    )
    assert len(asyncio.run(resolver.resolve(check_name("wide.test")))) == MAX_ADDRESSES


@pytest.mark.parametrize(
    ("text", "family", "expected"),
    [
        ("localhost", 6, ["::1"]),
        ("localhost", 4, ["127.0.0.1"]),
        ("localhost", None, ["127.0.0.1", "::1"]),
        ("LOCALHOST", 6, ["::1"]),
        ("db.app.localhost", 6, ["::1"]),
        ("db.localhost", 4, ["127.0.0.1"]),
    ],
)
def test_localhost_names_are_the_loopback_addresses_without_asking_getaddrinfo(
    text: str, family: Any, expected: list[str]
) -> None:
    """RFC 6761 §6.3: with /etc/hosts listing localhost for IPv4 only, glibc asked the upstream
    name server for `localhost AAAA`; the answer is now ::1 (or 127.0.0.1), never asked."""
    asked: list[str] = []

    def upstream(host: str, *args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        asked.append(host)
        return [_info("2001:db8::53"), _info("10.0.0.53")]  # whatever the upstream says

    resolver = SystemResolver(timeout=1.0, max_in_flight=1, getaddrinfo=upstream)
    found = asyncio.run(resolver.resolve(check_name(text), family=family))
    assert [str(a) for a in found] == expected and asked == []
    assert resolver.slots.held == 0
    # A name that merely contains "localhost" is an ordinary name and is asked.
    asyncio.run(resolver.resolve(check_name("notlocalhost.test"), family=6))
    asyncio.run(resolver.resolve(check_name("localhost.test"), family=6))
    assert asked == ["notlocalhost.test", "localhost.test"]


def test_the_name_server_resolver_is_not_asked_for_localhost(dns_server: DnsServer) -> None:
    """RFC 6761 §6.3 with `dns://`: the server's own answer for localhost is never used."""
    dns_server.add("localhost", "AAAA", "2001:db8::1")
    resolver = NameServerResolver(
        ip_address("127.0.0.1"), dns_server.port, timeout=1.0, max_in_flight=1
    )
    assert asyncio.run(resolver.resolve(LOCALHOST, family=6)) == (ip_address("::1"),)
    assert dns_server.queries == []


def test_resolvers_take_only_checked_names() -> None:
    """Raw text cannot reach a resolver: only a HostName from check_name is accepted."""
    resolver = SystemResolver(timeout=1.0, max_in_flight=1)
    with pytest.raises(TypeError, match="HostName"):
        asyncio.run(resolver.resolve("localhost"))  # type: ignore[arg-type]  # the check under test


def test_resolver_setting_selects_the_resolver_and_refuses_anything_else() -> None:
    """`system` or `dns://IP[:PORT]` with a canonical IP; a name server given by name is refused."""
    assert parse_resolver_setting("system") is None
    assert parse_resolver_setting("dns://127.0.0.1:5353") == (ip_address("127.0.0.1"), 5353)
    assert parse_resolver_setting("dns://[::1]") == (ip_address("::1"), 53)
    system = select_resolver("system", timeout=2.0, max_in_flight=3)
    assert isinstance(system, SystemResolver) and system.max_in_flight == 3
    pinned = select_resolver("dns://127.0.0.1:5353", timeout=1.5, max_in_flight=2)
    assert isinstance(pinned, NameServerResolver) and pinned.port == 5353
    assert pinned.timeout == 1.5
    for bad in ("dns://localhost", "dns://127.1", "dns://1.2.3.4:0", "udp://1.2.3.4", "System"):
        with pytest.raises(ValueError):
            parse_resolver_setting(bad)


def test_dns_resolver_setting_fails_at_start_up_where_dnspython_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image ships without dnspython: `dns://` is then a clear settings error, not a crash."""
    import importlib.util

    from pingcalc.ping.resolvers import check_resolver_setting
    from pingcalc.settings import SettingsError, load_settings

    assert check_resolver_setting("dns://127.0.0.1:53") == "dns://127.0.0.1:53"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert check_resolver_setting("system") == "system"
    with pytest.raises(SettingsError, match=r"PINGCALC_PING_RESOLVER: .*needs the dnspython"):
        load_settings(_env_file=None, ping_resolver="dns://127.0.0.1:53")
