"""Turn a target into the one checked address a request pings: resolve once, judge every address.

For a host name this is where DNS rebinding and internal names are stopped:

* The name is resolved exactly once per request, and the backend is given one of the
  addresses of that answer as an `ipaddress` object: nothing resolves the name again between
  the policy check and the echo (DNS rebinding: a first answer that passes the check, a
  second one pointing inside).
* The policy judges every address of the answer (A and AAAA, after any CNAME chain); if any
  is refused, the whole name is refused naming that address. A name that mixes a public
  and an internal address is an attack (or a misconfiguration nobody should ping through).
* Without a family, IPv4 is preferred when the name has one (as Globalping does), so the
  choice does not depend on the order of the answer; within a family the first address of
  the resolver's (RFC 6724) order is taken.

`check_target` does everything that needs no lookup (syntax, and the policy for an IP
address), so a caller can refuse a bad target before it takes a concurrency slot and resolve
a name only once it holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pingcalc.ping.errors import (
    NameDeniedError,
    NameNotFoundError,
    PlanError,
    TargetDeniedError,
)
from pingcalc.ping.interface import Address, Family
from pingcalc.ping.names import HostName
from pingcalc.ping.policy import TargetPolicy
from pingcalc.ping.resolvers.interface import Resolver
from pingcalc.ping.target import parse_host

# Addresses of an answer written into an audit record (the pinged one is `address`); the
# count says how many there were. A record stays the same size whatever a zone publishes:
# a name with thousands of allowed addresses made each ping record tens of KB, which at a
# token's rate limit fills the audit disk and, fail-closed, stops every audited action.
MAX_RECORDED_ADDRESSES = 8


@dataclass(frozen=True, slots=True)
class Destination:
    """The checked address to ping and, for a name, the name and every checked address."""

    address: Address
    name: HostName | None = None
    resolved: tuple[Address, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """For audit records: the address pinged, and for a name the name, the first
        `MAX_RECORDED_ADDRESSES` addresses of its answer and how many it had."""
        if self.name is None:
            return {"address": str(self.address)}
        return {
            "address": str(self.address),
            "name": self.name.ascii,
            "resolved": [str(a) for a in self.resolved[:MAX_RECORDED_ADDRESSES]],
            "resolved_count": len(self.resolved),
        }


def check_target(
    text: str, *, policy: TargetPolicy, family: Family | None = None
) -> Destination | HostName:
    """Without any lookup: the checked destination of an IP address, or the checked name.

    Raises `TargetSyntaxError` (`NameSyntaxError` for names), `TargetDeniedError` or
    `PlanError` (an IP address of the other family).
    """
    host = parse_host(text)
    if isinstance(host, HostName):
        return host
    address = policy.check(host)
    if family is not None and address.version != family:
        raise PlanError("family", f"{address} is an IPv{address.version} address, not IPv{family}")
    return Destination(address)


async def resolve_target(
    text: str,
    *,
    policy: TargetPolicy,
    resolver: Resolver,
    family: Family | None = None,
    owner: str | None = None,
) -> Destination:
    """The destination for a client's `text`: an IP address or a host name, checked.

    Raises what `check_target` raises (before any lookup), `NameDeniedError`, or a
    `ResolutionError` subclass.
    """
    target = check_target(text, policy=policy, family=family)
    if isinstance(target, Destination):
        return target
    return await resolve_name(target, policy=policy, resolver=resolver, family=family, owner=owner)


async def resolve_name(
    name: HostName,
    *,
    policy: TargetPolicy,
    resolver: Resolver,
    family: Family | None = None,  # 4 or 6: the lookup asks for A or for AAAA records only
    owner: str | None = None,
) -> Destination:
    """Resolve `name` once (a lookup slot of `owner`), check every address, choose one."""
    checked: list[Address] = []
    for address in await resolver.resolve(name, family=family, owner=owner):
        try:
            checked.append(policy.check(address))
        except TargetDeniedError as exc:
            raise NameDeniedError(name.ascii, exc.address, exc.description, exc.category) from None
    # policy.check unwraps IPv4-mapped IPv6 answers, so filter the family again.
    usable = [a for a in checked if family is None or a.version == family]
    preferred = [a for a in usable if a.version == 4] or usable
    if not preferred:
        raise NameNotFoundError(name.ascii, f"{name} has no IPv{family} address")
    return Destination(preferred[0], name, tuple(dict.fromkeys(checked)))
