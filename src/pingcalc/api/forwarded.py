"""The client's address: the TCP peer, or what a trusted proxy says in X-Forwarded-For.

Only peers inside `PINGCALC_FORWARDED_ALLOW_IPS` (addresses or CIDR networks) are believed;
anyone else's X-Forwarded-For is ignored, so a client cannot choose the address its rate
limits, penalty box and audit records use (T1090, TM-21). The header is read right to left:
each proxy appends the address it received from, so the first entry that is not a trusted
proxy is the client. Entries left of it were written by the client and are never read. An
entry that a trusted proxy wrote and that is not an IP address is refused (400), never
logged as the client.
"""

from __future__ import annotations

from ipaddress import IPv6Address, ip_address

from pingcalc.settings import parse_networks

# Peers remembered as trusted or not (parsing an address costs microseconds; bounded so a
# flood of distinct peers cannot grow it).
_PEER_CACHE_MAX = 4096
# Longest X-Forwarded-For we read; a proxy chain is a handful of addresses.
MAX_FORWARDED_LENGTH = 1024


class ForwardedError(ValueError):
    """A trusted proxy's X-Forwarded-For does not name a client address."""


class AddressSet:
    """Addresses and networks given as `10.0.0.0/8, 192.0.2.7` (or `*` for every address),
    with a bounded cache of the peers already judged."""

    def __init__(self, spec: str) -> None:
        self.networks, self.everyone = parse_networks(spec)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks)

    def __contains__(self, address: object) -> bool:
        """Whether `address` is in the set (False for anything that is not an address)."""
        if self.everyone:
            return True
        if not isinstance(address, str):
            return False
        known = self._cache.get(address)
        if known is None:
            try:
                ip = ip_address(address.partition("%")[0])
            except ValueError:
                known = False
            else:
                known = any(ip in net for net in self.networks)
            if len(self._cache) >= _PEER_CACHE_MAX:
                self._cache.clear()
            self._cache[address] = known
        return known


class TrustedProxies:
    """Which peers may speak for their clients, and what they say."""

    def __init__(self, spec: str) -> None:
        self.proxies = AddressSet(spec)

    def __bool__(self) -> bool:
        return bool(self.proxies)

    def trusts(self, address: str) -> bool:
        """Whether `address` is a trusted proxy (False for anything that is not an address)."""
        return address in self.proxies

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address for a request from `peer` carrying `forwarded_for`."""
        if forwarded_for is None or not self.trusts(peer):
            return peer
        if len(forwarded_for) > MAX_FORWARDED_LENGTH:
            raise ForwardedError("X-Forwarded-For is too long")
        entries = [entry.strip() for entry in forwarded_for.split(",")]
        for entry in reversed(entries):
            try:
                ip = ip_address(entry)
            except ValueError:
                ip = None
            if ip is None or (isinstance(ip, IPv6Address) and ip.scope_id):
                raise ForwardedError(
                    "X-Forwarded-For from a trusted proxy does not end in IP addresses"
                )
            address = str(ip)
            if not self.trusts(address):
                return address
        # Every hop is a trusted proxy: the leftmost one originated the request.
        return str(ip_address(entries[0]))
