"""Which addresses this server will ping: global unicast and loopback, nothing internal.

Without this the service is a scanner for the networks behind it (internal reconnaissance,
SSRF-style probing of 10/8, of the cloud metadata address 169.254.169.254, ...). The decision
for an address, in order:

1. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is judged as the IPv4 address (RFC 4291 §2.5.5.2).
2. Never, whatever the settings say: unspecified, multicast and broadcast addresses. An echo
   to those reaches many hosts or none (Smurf-style amplification, RFC 2644; RFC 1122
   §3.2.2.6 lets hosts ignore such echoes anyway).
3. `ping_deny` networks are refused (deny wins over allow).
4. `ping_allow` networks are accepted (allow wins over the default categories below).
5. Loopback (127.0.0.0/8, ::1) is accepted: it only reaches this host's own stack.
6. Addresses that embed an IPv4 address are judged by the embedded address, which is where
   the packet ends up: NAT64 `64:ff9b::/96` (RFC 6052) and 6to4 `2002::/16` (RFC 3056).
   `ipaddress.is_global`/`is_private` do not look inside them (`64:ff9b::10.0.0.1` reads as
   global). The embedded address must be global: an embedded loopback is refused too, since
   it is some translator's loopback, not ours. Teredo `2001::/32` (RFC 4380) and local-use
   NAT64 `64:ff9b:1::/48` (RFC 8215) are refused outright: the first encodes a client behind
   a NAT (obfuscated), the second a site-specific translation prefix.
7. The named special-purpose ranges below (RFC 6890 and its IPv6 registry) are refused with
   their name, and finally anything `ipaddress` does not call global, as a catch-all that
   also covers ranges added to the registry later.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from pingcalc.ping.errors import TargetDeniedError
from pingcalc.ping.interface import Address

Network = IPv4Network | IPv6Network

__all__ = ["Network", "TargetDeniedError", "TargetPolicy"]


def _nets(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ip_network(c) for c in cidrs)


# Step 2: refused even if an allow list covers them.
_NEVER: tuple[tuple[tuple[Network, ...], str, str], ...] = (
    (_nets("0.0.0.0/8", "::/128"), "unspecified", "unspecified"),
    (_nets("255.255.255.255/32"), "the limited broadcast address", "broadcast"),
    (_nets("224.0.0.0/4", "ff00::/8"), "multicast", "multicast"),
)

_LOOPBACK = _nets("127.0.0.0/8", "::1/128")

# Step 7, first match names the reason. Sources: the IANA IPv4 and IPv6 Special-Purpose
# Address Registries (RFC 6890), which `ipaddress` itself follows.
_DENIED: tuple[tuple[tuple[Network, ...], str, str], ...] = (
    # 169.254.169.254 is the cloud metadata service (AWS, GCP, Azure, OpenStack): link-local.
    (_nets("169.254.0.0/16", "fe80::/10"), "link-local", "link-local"),
    (_nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "private", "private"),
    (_nets("fc00::/7"), "private (unique local, RFC 4193)", "private"),
    (_nets("fec0::/10"), "site-local (deprecated, RFC 3879)", "private"),
    (_nets("100.64.0.0/10"), "shared address space (carrier-grade NAT, RFC 6598)", "shared"),
    (
        _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"),
        "a documentation address (RFC 5737, RFC 3849, RFC 9637)",
        "documentation",
    ),
    (_nets("198.18.0.0/15", "2001:2::/48"), "a benchmarking address (RFC 2544)", "reserved"),
    (_nets("2001::/32"), "a Teredo address (RFC 4380), refused", "tunnel"),
    (_nets("64:ff9b:1::/48"), "a local-use NAT64 address (RFC 8215)", "tunnel"),
    (
        _nets("192.0.0.0/24", "240.0.0.0/4", "::/8", "100::/64", "2001::/23"),
        "reserved",
        "reserved",
    ),
)

_NAT64 = ip_network("64:ff9b::/96")
_SIXTOFOUR = ip_network("2002::/16")


def _first_match(
    address: Address, table: tuple[tuple[tuple[Network, ...], str, str], ...]
) -> tuple[str, str] | None:
    for networks, description, category in table:
        if any(address in net for net in networks):
            return description, category
    return None


def _embedded_ipv4(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address a NAT64 or 6to4 address forwards to, with the mechanism's name."""
    if address in _NAT64:
        return "NAT64", IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIXTOFOUR and address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


class TargetPolicy:
    """Decides whether an address may be pinged; `check` raises `TargetDeniedError` if not."""

    def __init__(self, allow: Iterable[Network] = (), deny: Iterable[Network] = ()) -> None:
        self.allow = tuple(allow)
        self.deny = tuple(deny)

    def check(self, address: Address) -> Address:
        """Return the address actually to be pinged (mapped IPv6 unwrapped), or raise."""
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        never = _first_match(address, _NEVER)
        if never is not None:
            raise TargetDeniedError(address, *never)
        for net in self.deny:
            if address in net:
                raise TargetDeniedError(address, f"in the denied network {net}", "denied")
        if any(address in net for net in self.allow):
            return address
        if any(address in net for net in _LOOPBACK):
            return address
        if isinstance(address, IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                mechanism, inner = embedded
                self._check_embedded(address, mechanism, inner)
                return address
        self._check_categories(address)
        return address

    def _check_categories(self, address: Address) -> None:
        named = _first_match(address, _DENIED)
        if named is not None:
            raise TargetDeniedError(address, *named)
        if not address.is_global:
            raise TargetDeniedError(address, "not a globally routable address", "reserved")

    def _check_embedded(self, address: IPv6Address, mechanism: str, inner: IPv4Address) -> None:
        """Judge the IPv4 address inside `address`; it must be global (not even loopback)."""
        for net in self.deny:
            if inner in net:
                raise TargetDeniedError(
                    address,
                    f"a {mechanism} address of {inner}, in the denied network {net}",
                    "denied",
                )
        reason = _first_match(inner, _NEVER) or (
            ("loopback", "loopback") if any(inner in net for net in _LOOPBACK) else None
        )
        if reason is None:
            try:
                self._check_categories(inner)
            except TargetDeniedError as exc:
                reason = (exc.description, exc.category)
        if reason is not None:
            raise TargetDeniedError(
                address, f"a {mechanism} address of {inner} ({reason[0]})", reason[1]
            )
