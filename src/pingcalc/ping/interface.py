"""What every ping backend shares: the result and event models and the abstract backend.

A backend only ever receives an `IPv4Address`/`IPv6Address` that `TargetPolicy.check`
accepted (parsed from the client's text, or one of the checked addresses of a resolved name);
it never sees the client's text and never resolves anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal

# Re-exported: these lived here before ping/errors.py held every ping error.
from pingcalc.ping.errors import BackendUnavailableError as BackendUnavailableError
from pingcalc.ping.errors import PingError as PingError

Address = IPv4Address | IPv6Address
# The address family a client may ask a name to be resolved to.
Family = Literal[4, 6]

# Slack added to the time the echoes themselves need, for process start-up (subprocess
# backend) and scheduling; the deadline still bounds every request (T1499 endpoint DoS).
DEADLINE_SLACK_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """Whether pings can be sent now, and if not, why and what the operator must change."""

    available: bool  # False: every ping answers 503 and /readyz says degraded
    backend: str
    reason: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """One echo reply: its sequence number and round-trip time in milliseconds."""

    seq: int
    rtt_ms: float

    def to_dict(self) -> dict[str, Any]:
        """The live event's JSON shape (one line of a stream)."""
        return {"event": "reply", "seq": self.seq, "rtt_ms": round(self.rtt_ms, 3)}


@dataclass(frozen=True, slots=True)
class Lost:
    """An echo that got no reply within its timeout (or before the deadline)."""

    seq: int

    def to_dict(self) -> dict[str, Any]:
        """The live event's JSON shape (one line of a stream)."""
        return {"event": "timeout", "seq": self.seq}


# What a backend reports as it happens: exactly one event per echo sent, in time order.
PingEvent = Reply | Lost
# Called from the event loop for each event; must neither block nor raise.
EventSink = Callable[[PingEvent], None]


def ignore_event(event: PingEvent) -> None:
    """The event sink of a caller that only wants the result."""


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
    # The host name the address came from; None for an IP target (the JSON then has no key).
    name: str | None = None

    @classmethod
    def build(
        cls,
        address: Address,
        *,
        sent: int,
        replies: Sequence[Reply],
        backend: str,
        name: str | None = None,
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
            name=name,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and of `pingcalc ping --json` (times rounded to µs)."""
        rtt = self.rtt
        named = {} if self.name is None else {"name": self.name}
        return {
            "target": self.target,
            **named,
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


@dataclass(frozen=True, slots=True)
class Echoes:
    """What one request asks of a backend: `count` echoes `interval` s apart, `timeout` s
    of wait for each reply, and `deadline`, the most seconds the whole exchange may take."""

    count: int
    timeout: float
    interval: float
    deadline: float

    @classmethod
    def bounded(cls, count: int, *, timeout: float, interval: float) -> Echoes:
        """The echoes with the deadline derived from them (`deadline_for`), never chosen."""
        return cls(
            count, timeout, interval, deadline_for(count, timeout=timeout, interval=interval)
        )


class PingBackend(ABC):
    """Sends ICMP echo requests to one validated address and collects the replies."""

    name: str

    def status(self) -> BackendStatus:
        """Whether this backend can ping; a backend that could not would not have been chosen."""
        return BackendStatus(True, self.name, "")

    @abstractmethod
    async def ping(
        self, address: Address, echoes: Echoes, on_event: EventSink | None = None
    ) -> PingResult:
        """Send `echoes.count` echoes `echoes.interval` s apart, wait `echoes.timeout` s for
        each reply.

        When `echoes.deadline` seconds have passed, the result holds what arrived so far.
        `on_event`, if given, is called once per echo sent with its `Reply` or `Lost` as it
        happens. Cancelling the call stops the exchange at once and releases its socket or
        process. Raises `BackendUnavailableError` if no echo can be sent.
        """

    async def stream(
        self, address: Address, echoes: Echoes
    ) -> AsyncGenerator[PingEvent | PingResult, None]:
        """Yield each `Reply`/`Lost` as it happens, then the `PingResult` that `ping` returns.

        Iterate inside `contextlib.aclosing(...)`: leaving early, or cancelling the consumer
        (a client that disconnected), cancels the exchange and releases its socket or process.
        """
        events: asyncio.Queue[PingEvent] = asyncio.Queue()  # at most `echoes.count` items
        exchange = asyncio.ensure_future(self.ping(address, echoes, events.put_nowait))
        try:
            while True:
                waiter = asyncio.ensure_future(events.get())
                try:
                    await asyncio.wait({waiter, exchange}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if waiter.done() and not waiter.cancelled():
                    yield waiter.result()
                elif exchange.done():
                    while not events.empty():
                        yield events.get_nowait()
                    yield exchange.result()  # or the backend's error
                    return
        finally:
            if not exchange.done():
                exchange.cancel()
                # Let the exchange run its cleanup now; our own cancellation still propagates.
                with contextlib.suppress(asyncio.CancelledError):
                    await exchange
