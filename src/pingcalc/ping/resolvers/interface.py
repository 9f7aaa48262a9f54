"""What every resolver shares: a lookup of a checked name, bounded in time, number and size.

Resolving is the one place a client's input makes this server send traffic it did not
choose (to a name server, and through it to whoever runs the zone), so every lookup is:

* of a `HostName` only (names.py checked it; raw text cannot reach a resolver);
* not made at all for `localhost` and `*.localhost`, which are the loopback addresses
  (RFC 6761 §6.3, loopback.py);
* refused at once when `max_in_flight` lookups are already running in the process, or when
  its owner (the token asking) already holds `max_per_owner` of them (resolver DoS, T1499):
  there is no queue to fill, a flood of slow names costs at most that many lookups, and one
  token cannot take the slots every other token needs (slots.py);
* bounded by `timeout` seconds: a slow or silent name server cannot hold a request;
* answered as a de-duplicated tuple in the resolver's order, filtered to the family asked,
  of at most `MAX_ADDRESSES` addresses.

Implementations map their own failures to the errors of ping/errors.py with fixed messages.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable

from pingcalc.ping.errors import NameNotFoundError, ResolverTimeoutError, TooManyAddressesError
from pingcalc.ping.interface import Address, Family
from pingcalc.ping.names import HostName
from pingcalc.ping.resolvers.loopback import loopback_answer
from pingcalc.ping.resolvers.slots import LookupSlots, Slot

# Addresses a name may resolve to (both families together), more than any service publishes
# for one name (large CDNs and pools answer with a few per family). Past it the name is
# refused: an answer of thousands of records (64 KB over TCP hold about 2,300 AAAA records,
# for instance IPv4-mapped loopback addresses that the policy allows) would otherwise make
# every request of a token parse, judge and hold them all, and put them in its audit record.
MAX_ADDRESSES = 32


class Resolver(ABC):
    """Looks up the addresses of a checked host name; `resolve` adds the bounds."""

    kind: str

    def __init__(
        self, *, timeout: float, max_in_flight: int, max_per_owner: int | None = None
    ) -> None:
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.slots = LookupSlots(max_in_flight, max_per_owner)
        self._waiting = 0

    @property
    def in_flight(self) -> int:
        """Lookups being waited for right now."""
        return self._waiting

    async def resolve(
        self, name: HostName, *, family: Family | None = None, owner: str | None = None
    ) -> tuple[Address, ...]:
        """Every address of `name` (of `family` if given), or a `ResolutionError`.

        `owner` (a token name) is counted against its share of the lookup slots.
        """
        if not isinstance(name, HostName):
            raise TypeError("resolve() takes a HostName from names.check_name, not raw text")
        loopback = loopback_answer(name, family)
        if loopback is not None:
            return loopback
        slot = self.slots.take(name, owner)
        self._waiting += 1
        limit = asyncio.timeout(self.timeout)
        try:
            async with limit:
                found = await self._lookup(name, family, slot)
        except TimeoutError:
            if not limit.expired():
                raise
            raise ResolverTimeoutError(
                name.ascii, f"the lookup of {name} took longer than {self.timeout:g} s"
            ) from None
        finally:
            self._waiting -= 1
            slot.release()
        addresses = _unique(a for a in found if family is None or a.version == family)
        if not addresses:
            which = "an address" if family is None else f"an IPv{family} address"
            raise NameNotFoundError(name.ascii, f"{name} has no {which}")
        if len(addresses) > MAX_ADDRESSES:
            raise TooManyAddressesError(
                name.ascii,
                f"{name} resolves to {len(addresses)} addresses; a name is pinged only if it "
                f"has at most {MAX_ADDRESSES}",
                len(addresses),
            )
        return addresses

    @abstractmethod
    async def _lookup(self, name: HostName, family: Family | None, slot: Slot) -> list[Address]:
        """The addresses the resolver gives for `name`; raise `ResolutionError` subclasses.

        `slot` is released by `resolve` when the wait ends; a lookup that goes on after that
        (a thread that cannot be cancelled) must `keep` it and release it when it is done.
        """


def _unique(addresses: Iterable[Address]) -> tuple[Address, ...]:
    return tuple(dict.fromkeys(addresses))
