"""What every resolver shares: a lookup of a checked name, bounded in time and in number.

Resolving is the one place a client's input makes this server send traffic it did not
choose (to a name server, and through it to whoever runs the zone), so every lookup is:

* of a `HostName` only (names.py checked it; raw text cannot reach a resolver);
* refused at once when `max_in_flight` lookups are already running (resolver DoS, T1499):
  there is no queue to fill, and a flood of slow names costs at most that many lookups;
* bounded by `timeout` seconds: a slow or silent name server cannot hold a request;
* answered as a de-duplicated tuple in the resolver's order, filtered to the family asked.

Implementations map their own failures to the errors of ping/errors.py with fixed messages.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable

from pingcalc.ping.errors import NameNotFoundError, ResolverBusyError, ResolverTimeoutError
from pingcalc.ping.interface import Address, Family
from pingcalc.ping.names import HostName


def busy(name: HostName, limit: int) -> ResolverBusyError:
    """The error for a lookup refused because `limit` lookups are already in flight."""
    return ResolverBusyError(
        name.ascii, f"too many host name lookups in flight (at most {limit}); try again shortly"
    )


class Resolver(ABC):
    """Looks up the addresses of a checked host name; `resolve` adds the bounds."""

    kind: str

    def __init__(self, *, timeout: float, max_in_flight: int) -> None:
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Lookups being waited for right now."""
        return self._in_flight

    async def resolve(self, name: HostName, *, family: Family | None = None) -> tuple[Address, ...]:
        """Every address of `name` (of `family` if given), or a `ResolutionError`."""
        if not isinstance(name, HostName):
            raise TypeError("resolve() takes a HostName from names.check_name, not raw text")
        if self._in_flight >= self.max_in_flight:
            raise busy(name, self.max_in_flight)
        self._in_flight += 1
        limit = asyncio.timeout(self.timeout)
        try:
            async with limit:
                found = await self._lookup(name, family)
        except TimeoutError:
            if not limit.expired():
                raise
            raise ResolverTimeoutError(
                name.ascii, f"the lookup of {name} took longer than {self.timeout:g} s"
            ) from None
        finally:
            self._in_flight -= 1
        addresses = _unique(a for a in found if family is None or a.version == family)
        if not addresses:
            which = "an address" if family is None else f"an IPv{family} address"
            raise NameNotFoundError(name.ascii, f"{name} has no {which}")
        return addresses

    @abstractmethod
    async def _lookup(self, name: HostName, family: Family | None) -> list[Address]:
        """The addresses the resolver gives for `name`; raise `ResolutionError` subclasses."""


def _unique(addresses: Iterable[Address]) -> tuple[Address, ...]:
    return tuple(dict.fromkeys(addresses))
