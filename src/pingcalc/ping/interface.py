"""What every ping backend shares: the result model, the abstract backend and the base error.

A backend only ever receives an `IPv4Address`/`IPv6Address` that `parse_target` produced and
`TargetPolicy.check` accepted; it never sees the client's text.
"""

from __future__ import annotations

import errno
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from pingcalc.errors import PingcalcError

Address = IPv4Address | IPv6Address

# Slack added to the time the echoes themselves need, for process start-up (subprocess
# backend) and scheduling; the deadline still bounds every request (T1499 endpoint DoS).
DEADLINE_SLACK_SECONDS = 0.5


class PingError(PingcalcError):
    """Base of every error the ping engine raises."""


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
    reason to re-select the backend: nothing about the backend is wrong.
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


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """Whether pings can be sent now, and if not, why and what the operator must change."""

    available: bool
    backend: str
    reason: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """One echo reply: its sequence number and round-trip time in milliseconds."""

    seq: int
    rtt_ms: float


@dataclass(frozen=True, slots=True)
class RttStats:
    """Round-trip statistics over the replies of one request, in milliseconds."""

    min: float
    avg: float
    max: float
    stddev: float

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> RttStats | None:
        """Min/avg/max and population standard deviation (as iputils reports `mdev`)."""
        if not samples:
            return None
        avg = sum(samples) / len(samples)
        variance = sum((s - avg) ** 2 for s in samples) / len(samples)
        return cls(min(samples), avg, max(samples), math.sqrt(variance))


@dataclass(frozen=True, slots=True)
class PingResult:
    """The outcome of one request; no reply at all is a result (100 % loss), not an error."""

    target: str
    family: int  # 4 or 6
    sent: int
    received: int
    loss_percent: float
    rtt: RttStats | None
    replies: tuple[Reply, ...]
    backend: str

    @classmethod
    def build(
        cls, address: Address, *, sent: int, replies: Sequence[Reply], backend: str
    ) -> PingResult:
        """Derive the counters and statistics from the replies actually received."""
        ordered = tuple(sorted(replies, key=lambda r: r.seq))
        received = len(ordered)
        loss = 100.0 if sent == 0 else round(100.0 * (sent - received) / sent, 1)
        return cls(
            target=str(address),
            family=address.version,
            sent=sent,
            received=received,
            loss_percent=loss,
            rtt=RttStats.from_samples([r.rtt_ms for r in ordered]),
            replies=ordered,
            backend=backend,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and of `pingcalc ping --json` (times rounded to µs)."""
        rtt = self.rtt
        return {
            "target": self.target,
            "family": self.family,
            "sent": self.sent,
            "received": self.received,
            "loss_percent": self.loss_percent,
            "rtt_ms": None
            if rtt is None
            else {
                "min": round(rtt.min, 3),
                "avg": round(rtt.avg, 3),
                "max": round(rtt.max, 3),
                "stddev": round(rtt.stddev, 3),
            },
            "replies": [{"seq": r.seq, "rtt_ms": round(r.rtt_ms, 3)} for r in self.replies],
            "backend": self.backend,
        }


def deadline_for(count: int, *, timeout: float, interval: float) -> float:
    """The total seconds a request of `count` echoes may take: sends, last wait, slack."""
    return (count - 1) * interval + timeout + DEADLINE_SLACK_SECONDS


class PingBackend(ABC):
    """Sends ICMP echo requests to one validated address and collects the replies."""

    name: str

    def status(self) -> BackendStatus:
        """Whether this backend can ping; a backend that could not would not have been chosen."""
        return BackendStatus(True, self.name, "")

    @abstractmethod
    async def ping(
        self,
        address: Address,
        *,
        count: int,
        timeout: float,  # noqa: ASYNC109 - per-echo reply wait, not a call timeout
        interval: float,
        deadline: float,
    ) -> PingResult:
        """Send `count` echoes `interval` s apart, wait `timeout` s for each reply.

        `deadline` is the most seconds the whole call may take; when it passes, the result
        holds what arrived so far. Raises `BackendUnavailableError` if no echo can be sent.
        """
