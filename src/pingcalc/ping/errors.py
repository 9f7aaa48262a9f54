"""Every error the ping engine raises, in one place; the HTTP layer maps each to a problem.

    PingError                       ping/: a target was refused, or no echo can be sent
     ├── TargetSyntaxError          neither a canonical IP address nor a valid host name  422
     │    └── NameSyntaxError       a host name breaking RFC 1123 / IDNA rules (no lookup) 422
     ├── PlanError                  a count or family the server does not accept          422
     ├── TargetDeniedError          an address the policy refuses (`address`, `category`) 403
     │    └── NameDeniedError       a name with at least one refused address (`name`)     403
     ├── ResolutionError            a checked name gave no usable answer (`name`)
     │    ├── NameNotFoundError     no such name, or no address of the asked family       404
     │    ├── ResolverTimeoutError  no answer within the lookup timeout                   504
     │    ├── ResolverBusyError     too many lookups in flight: refused at once           503
     │    │    └── LookupShareError  one owner's (token's) share of them is taken         429
     │    ├── TooManyAddressesError more addresses than a name may have (`count`)         422
     │    └── ResolverFailedError   the resolver failed (SERVFAIL, no server reachable)   502
     └── BackendUnavailableError    no socket permission, no ping binary                  503
          └── FamilyUnavailableError  the host has no IPv6 (no address, route or support)   503

Messages are fixed text plus values we produced (addresses, the checked ASCII name): no
resolver's or library's own error text reaches a client (it can name internal servers).
"""

from __future__ import annotations

import errno
from ipaddress import IPv4Address, IPv6Address

from pingcalc.errors import PingcalcError

_Address = IPv4Address | IPv6Address


class PingError(PingcalcError):
    """Base of every error the ping engine raises."""


class TargetSyntaxError(PingError):
    """The target is neither an IP address in an accepted text form nor a valid host name."""


class NameSyntaxError(TargetSyntaxError):
    """A host name refused by `names.check_name`, before any resolver saw it."""


class PlanError(PingError):
    """A ping parameter outside what the server allows; `field` names it (`count`, `family`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TargetDeniedError(PingError):
    """A valid address the policy refuses; `category` is a short slug for logs and metrics."""

    def __init__(
        self, address: _Address, description: str, category: str, *, message: str | None = None
    ) -> None:
        super().__init__(message or f"{address} is {description}, which this server does not ping")
        self.address = address
        self.description = description
        self.category = category


class NameDeniedError(TargetDeniedError):
    """A name that resolves to at least one refused address; the whole name is refused."""

    def __init__(self, name: str, address: _Address, description: str, category: str) -> None:
        # A name mixing a public and an internal address is an attack, not a choice to make.
        super().__init__(
            address,
            description,
            category,
            message=f"{name} resolves to {address}, which is {description}; a name is pinged "
            "only if every address it resolves to is allowed",
        )
        self.name = name


class ResolutionError(PingError):
    """A checked name could not be turned into addresses; `name` is its ASCII form."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class NameNotFoundError(ResolutionError):
    """The name does not exist, or has no address of the family asked for."""


class ResolverTimeoutError(ResolutionError):
    """The resolver did not answer within the lookup timeout."""


class ResolverBusyError(ResolutionError):
    """As many lookups as allowed are in flight; this one was refused without waiting."""


class LookupShareError(ResolverBusyError):
    """The owner (a token) already holds its share of the lookup slots; others may still look up."""


class TooManyAddressesError(ResolutionError):
    """The answer holds more addresses than a name may have; `count` is how many it held."""

    def __init__(self, name: str, message: str, count: int) -> None:
        super().__init__(name, message)
        self.count = count


class ResolverFailedError(ResolutionError):
    """The resolver answered with a failure or could not be reached; the cause is not shown."""


# What an operator must change when no backend works; safe to tell a client (no path, no id).
OPERATOR_FIX = (
    'allow datagram ICMP sockets (sysctl -w net.ipv4.ping_group_range="0 2147483647", or a '
    "range holding only the service's group) or install iputils-ping"
)


class BackendUnavailableError(PingError):
    """The selected backend cannot send echoes here (permissions, no `ping`, no IPv6)."""

    @property
    def detail(self) -> str:
        """What a client is told: what the operator must change (the cause, with paths and
        the binary's own words, goes to the audit log only)."""
        return f"this server cannot send pings; the operator must {OPERATOR_FIX}"


class FamilyUnavailableError(BackendUnavailableError):
    """The host has no IPv6 (no address, no route, or disabled); IPv4 may still work.

    A subclass so that every caller that handles an unusable backend handles it, but not a
    reason to select the backend again: nothing about the backend is wrong.
    """

    @property
    def detail(self) -> str:
        return f"{self}; ping an IPv4 address"


# errno of a socket or send call -> why the host cannot reach any IPv6 address at all.
NO_IPV6_ERRNOS = {
    errno.EAFNOSUPPORT: "IPv6 is disabled in the kernel",
    errno.EADDRNOTAVAIL: "no IPv6 address, not even ::1",
    errno.ENETUNREACH: "no IPv6 route to the target",
}


def ipv6_unavailable(code: int | None) -> FamilyUnavailableError | None:
    """The error for an IPv6 socket or send failure that means "no IPv6 here", else None."""
    why = NO_IPV6_ERRNOS.get(code or 0)
    if why is None:
        return None
    return FamilyUnavailableError(f"IPv6 is not available on this host ({why})")
