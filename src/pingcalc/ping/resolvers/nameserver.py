"""A resolver that asks one given name server (dnspython), for tests and pinned setups.

Selected with `PINGCALC_PING_RESOLVER=dns://IP[:PORT]`: the tests run their own server on
loopback and so control every answer (rebinding, CNAME chains, silence). No search list, no
cache, no `/etc/hosts`, no retry on SERVFAIL: one name, asked as it is, A and AAAA in
parallel. A CNAME chain in the answer is followed by dnspython to the final records, whose
addresses are all returned (and all judged by the policy).
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from typing import TYPE_CHECKING

from pingcalc.ping.errors import (
    NameNotFoundError,
    PingError,
    ResolverFailedError,
    ResolverTimeoutError,
)
from pingcalc.ping.interface import Address, Family
from pingcalc.ping.names import HostName
from pingcalc.ping.resolvers.interface import Resolver

if TYPE_CHECKING:
    import dns.asyncresolver

_TYPES: dict[Family | None, tuple[str, ...]] = {None: ("A", "AAAA"), 4: ("A",), 6: ("AAAA",)}


class NameServerResolver(Resolver):
    """Asks `server`:`port` directly over UDP (TCP if the answer is truncated)."""

    kind = "dns"

    def __init__(
        self, server: Address, port: int = 53, *, timeout: float, max_in_flight: int
    ) -> None:
        super().__init__(timeout=timeout, max_in_flight=max_in_flight)
        import dns.asyncresolver  # only when selected: the default path never loads dnspython

        self.server = server
        self.port = port
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [str(server)]
        resolver.port = port
        resolver.timeout = timeout
        resolver.lifetime = timeout
        resolver.retry_servfail = False
        self._resolver: dns.asyncresolver.Resolver = resolver

    async def _lookup(self, name: HostName, family: Family | None) -> list[Address]:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._query(name, t)) for t in _TYPES[family]]
        except BaseExceptionGroup as failed:
            # Fail closed: a partial answer would leave addresses the policy never saw.
            first = failed.exceptions[0]
            if isinstance(first, PingError):
                raise first from None
            raise
        return [address for task in tasks for address in task.result()]

    async def _query(self, name: HostName, rdtype: str) -> list[Address]:
        import dns.exception
        import dns.name
        import dns.resolver

        try:
            answer = await self._resolver.resolve(
                dns.name.from_text(name.ascii), rdtype, search=False, raise_on_no_answer=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
            raise NameNotFoundError(name.ascii, f"{name} does not exist") from None
        except dns.exception.Timeout:
            raise ResolverTimeoutError(
                name.ascii, f"the name server did not answer for {name} in time"
            ) from None
        except dns.exception.DNSException:
            # SERVFAIL, REFUSED, malformed answers: the details stay here.
            raise ResolverFailedError(
                name.ascii, f"the name server failed to answer for {name}"
            ) from None
        if answer.rrset is None:
            return []
        return [ip_address(rdata.address) for rdata in answer.rrset]
