"""Resolver mechanics: the system resolver's threads, bounds and error mapping (TM-33)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from ipaddress import ip_address
from typing import Any

import pytest

from pingcalc.ping import (
    NameNotFoundError,
    NameServerResolver,
    ResolverBusyError,
    ResolverFailedError,
    ResolverTimeoutError,
    SystemResolver,
    check_name,
    parse_resolver_setting,
    select_resolver,
)

LOCALHOST = check_name("localhost")


def _info(address: str, port: int = 0) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_DGRAM, 17, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_DGRAM, 17, "", (address, port))


def test_system_resolver_answers_localhost_from_etc_hosts() -> None:
    """The default resolver is getaddrinfo: /etc/hosts applies (and no packet is sent for it)."""
    resolver = SystemResolver(timeout=2.0, max_in_flight=4)
    both = asyncio.run(resolver.resolve(LOCALHOST))
    assert ip_address("127.0.0.1") in both and all(a.is_loopback for a in both)
    assert asyncio.run(resolver.resolve(LOCALHOST, family=4)) == (ip_address("127.0.0.1"),)
    assert resolver.threads == 0 and resolver.in_flight == 0


def test_system_resolver_passes_the_family_and_drops_zone_ids_and_duplicates() -> None:
    """AF_INET/AF_INET6 restrict getaddrinfo; `%zone` is cut, repeated addresses given once."""
    seen: list[int] = []

    def fake(host: str, port: object, family: int = 0, type: int = 0) -> list[tuple[Any, ...]]:
        seen.append(family)
        return [_info("fe80::1%eth0"), _info("127.0.0.1"), _info("127.0.0.1"), _info("::1")]

    resolver = SystemResolver(timeout=1.0, max_in_flight=2, getaddrinfo=fake)
    found = asyncio.run(resolver.resolve(LOCALHOST))
    assert found == (ip_address("fe80::1"), ip_address("127.0.0.1"), ip_address("::1"))
    assert asyncio.run(resolver.resolve(LOCALHOST, family=6)) == (
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
            "localhost does not exist or has no address",
        ),
        (
            socket.gaierror(socket.EAI_AGAIN, "resolver 10.9.8.7 timed out"),
            ResolverFailedError,
            "the system resolver could not look up localhost (temporary failure)",
        ),
        (
            socket.gaierror(socket.EAI_FAIL, "10.9.8.7 said REFUSED"),
            ResolverFailedError,
            "the system resolver failed to look up localhost",
        ),
        (
            OSError("nss module /lib/secret.so crashed"),
            ResolverFailedError,
            "the system resolver failed to look up localhost",
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
        asyncio.run(resolver.resolve(LOCALHOST))
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
            asyncio.run(resolver.resolve(LOCALHOST))
        assert resolver.threads == 1 and resolver.in_flight == 0
        started = time.monotonic()
        with pytest.raises(ResolverBusyError, match="at most 1"):
            asyncio.run(resolver.resolve(LOCALHOST))
        assert time.monotonic() - started < 0.5 and len(calls) == 1  # refused, not queued
    finally:
        release.set()
    for _ in range(100):
        if resolver.threads == 0:
            break
        time.sleep(0.02)
    assert resolver.threads == 0
    assert asyncio.run(resolver.resolve(LOCALHOST)) == (ip_address("127.0.0.1"),)


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
