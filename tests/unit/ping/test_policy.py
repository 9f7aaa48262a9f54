"""Target policy: the service cannot be used to map internal networks (SSRF, reconnaissance).

Policy only: nothing here sends a packet.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address, ip_network

import pytest

from pingcalc.ping import TargetDeniedError, TargetPolicy, parse_target
from pingcalc.settings import Settings

DEFAULT = TargetPolicy()


@pytest.mark.parametrize(
    ("target", "category"),
    [
        ("169.254.169.254", "link-local"),
        ("169.254.0.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("fec0::1", "private"),
        ("100.64.0.1", "shared"),
        ("100.127.255.254", "shared"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("240.0.0.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("192.0.0.8", "reserved"),
        ("::127.0.0.1", "reserved"),
        ("100::1", "reserved"),
        ("64:ff9b::10.0.0.1", "private"),
        ("64:ff9b::169.254.169.254", "link-local"),
        ("64:ff9b::127.0.0.1", "loopback"),
        ("2002:a00:1::1", "private"),
        ("2002:a9fe:a9fe::1", "link-local"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "tunnel"),
        ("64:ff9b:1::8.8.8.8", "tunnel"),
    ],
)
def test_policy_denies_internal_and_special_addresses(target: str, category: str) -> None:
    """Private, link-local, metadata, multicast, reserved and embedded-internal targets: 403."""
    with pytest.raises(TargetDeniedError) as caught:
        DEFAULT.check(parse_target(target))
    assert caught.value.category == category
    assert "which this server does not ping" in str(caught.value)


def test_policy_names_the_metadata_address_reason() -> None:
    """The cloud metadata address is refused with the exact, readable reason."""
    with pytest.raises(TargetDeniedError) as caught:
        DEFAULT.check(parse_target("169.254.169.254"))
    assert str(caught.value) == "169.254.169.254 is link-local, which this server does not ping"


def test_policy_judges_mapped_ipv6_as_ipv4() -> None:
    """::ffff:10.0.0.1 is refused as 10.0.0.1 even when handed to the policy directly."""
    with pytest.raises(TargetDeniedError) as caught:
        DEFAULT.check(ip_address("::ffff:10.0.0.1"))
    assert str(caught.value).startswith("10.0.0.1 is private")


def test_policy_explains_embedded_address() -> None:
    """A NAT64 address is refused naming the internal IPv4 address it reaches."""
    with pytest.raises(TargetDeniedError) as caught:
        DEFAULT.check(parse_target("64:ff9b::a00:1"))
    assert "NAT64 address of 10.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    "target",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
        "::ffff:1.1.1.1",
    ],
)
def test_policy_allows_loopback_and_global_unicast(target: str) -> None:
    """Loopback and global unicast (also via NAT64/6to4 of a global address) are allowed."""
    address = parse_target(target)
    assert DEFAULT.check(address) == address


def test_allow_list_overrides_default_categories() -> None:
    """An operator can open an internal range explicitly; others stay closed."""
    policy = TargetPolicy(allow=[ip_network("10.0.0.0/8")])
    assert str(policy.check(parse_target("10.1.2.3"))) == "10.1.2.3"
    with pytest.raises(TargetDeniedError):
        policy.check(parse_target("192.168.1.1"))


def test_deny_list_wins_over_allow_list_and_defaults() -> None:
    """A denied network is refused even if also allowed, and global or loopback addresses too."""
    policy = TargetPolicy(
        allow=[ip_network("8.8.0.0/16")],
        deny=[ip_network("8.8.8.0/24"), ip_network("127.0.0.0/8"), ip_network("2606:4700::/32")],
    )
    for target in ("8.8.8.8", "127.0.0.1", "2606:4700:4700::1111", "64:ff9b::8.8.8.8"):
        with pytest.raises(TargetDeniedError) as caught:
            policy.check(parse_target(target))
        assert caught.value.category == "denied"
    assert str(policy.check(parse_target("8.8.4.4"))) == "8.8.4.4"


@pytest.mark.parametrize("target", ["255.255.255.255", "224.0.0.1", "0.0.0.0", "ff02::1", "::"])
def test_allow_list_cannot_open_broadcast_multicast_or_unspecified(target: str) -> None:
    """Amplification targets stay closed whatever the allow list says (Smurf, RFC 2644)."""
    policy = TargetPolicy(allow=[ip_network("0.0.0.0/0"), ip_network("::/0")])
    with pytest.raises(TargetDeniedError):
        policy.check(parse_target(target))
    assert str(policy.check(parse_target("10.0.0.1"))) == "10.0.0.1"


def test_policy_built_from_settings(make_settings: Callable[..., Settings]) -> None:
    """PINGCALC_PING_ALLOW / PINGCALC_PING_DENY reach the policy the server uses."""
    from pingcalc.services import build_services

    settings = make_settings(ping_allow="10.0.0.0/8", ping_deny="1.1.1.0/24")
    policy = build_services(settings).ping_policy
    assert str(policy.check(parse_target("10.9.9.9"))) == "10.9.9.9"
    with pytest.raises(TargetDeniedError):
        policy.check(parse_target("1.1.1.1"))
