"""`localhost` and the names under it, answered here with the loopback addresses (RFC 6761).

RFC 6761 §6.3: name resolution APIs "SHOULD recognize localhost names as special and SHOULD
always return the IP loopback address for address queries", and should not send them to
DNS. Without this, the answer depends on the host: a /etc/hosts that lists `localhost` for
IPv4 only makes glibc ask the upstream name server for `localhost AAAA` (so whoever answers
that chooses the address behind "localhost"), and a `dns://` server can answer anything.
Here the answer is fixed, whatever the resolver: 127.0.0.1 and ::1, the one of the family
asked. The policy still judges them, like any answer.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from pingcalc.ping.interface import Address, Family
from pingcalc.ping.names import HostName

LOCALHOST = "localhost"
LOOPBACK: dict[Family, Address] = {4: IPv4Address("127.0.0.1"), 6: IPv6Address("::1")}


def is_localhost(name: HostName) -> bool:
    """True for `localhost` and every name ending in `.localhost` (checked names are lower case)."""
    return name.ascii == LOCALHOST or name.ascii.endswith("." + LOCALHOST)


def loopback_answer(name: HostName, family: Family | None) -> tuple[Address, ...] | None:
    """The loopback addresses for a localhost name (of `family` if given), else None."""
    if not is_localhost(name):
        return None
    if family is None:
        return (LOOPBACK[4], LOOPBACK[6])
    return (LOOPBACK[family],)
