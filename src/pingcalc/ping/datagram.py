"""In-process ICMP echo over unprivileged datagram sockets: no subprocess, no capability.

`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)` (and `AF_INET6`/`IPPROTO_ICMPV6`) is Linux's
"ping socket": the kernel allows it to processes whose group is inside
`net.ipv4.ping_group_range` (one sysctl for both families), needs no CAP_NET_RAW, and
delivers to the socket only echo replies whose identifier matches the socket. The kernel
overwrites the identifier we write (it uses the socket's local "port") and the checksum, so
replies are matched by sequence number and by a random payload on a per-request socket:
nothing one request receives can be credited to another.

Each echo is settled exactly once, as it happens: a timely reply, or a loss when its timeout
timer fires (or at the deadline); `on_event` hears each, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import struct
import time
from ipaddress import IPv4Address
from typing import Protocol

from pingcalc.ping.errors import BackendUnavailableError, ipv6_unavailable
from pingcalc.ping.interface import (
    Address,
    Echoes,
    EventSink,
    Lost,
    PingBackend,
    PingResult,
    Reply,
    ignore_event,
)

ICMP_ECHO_REQUEST = 8  # RFC 792
ICMP_ECHO_REPLY = 0
ICMPV6_ECHO_REQUEST = 128  # RFC 4443 §4.1
ICMPV6_ECHO_REPLY = 129
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
# A random payload per request: a reply must echo it to count (stale or forged replies).
PAYLOAD_BYTES = 16
# Replies are header + payload; anything much larger is not ours.
RECV_BYTES = 512
# Datagrams read per wake-up, so a flood of replies cannot monopolise the event loop.
DRAIN_LIMIT = 64


def open_socket(family: socket.AddressFamily) -> socket.socket:
    """A non-blocking ping socket, or `BackendUnavailableError` saying why not."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    except PermissionError:
        raise BackendUnavailableError(
            "datagram ICMP sockets are not permitted for this process's group "
            "(net.ipv4.ping_group_range)"
        ) from None
    except OSError as exc:
        no_ipv6 = ipv6_unavailable(exc.errno) if family == socket.AF_INET6 else None
        if no_ipv6 is not None:
            raise no_ipv6 from None
        what = "IPv6" if family == socket.AF_INET6 else "IPv4"
        raise BackendUnavailableError(
            f"cannot open a datagram ICMP socket for {what}: {exc.strerror}"
        ) from None
    sock.setblocking(False)
    return sock


class _EchoSocket(Protocol):
    """What an exchange uses of its socket (a plain `socket.socket`, or a stand-in)."""

    def recv(self, size: int, /) -> bytes: ...

    def sendto(self, data: bytes, address: tuple[str, int], /) -> int: ...


class _Exchange:
    """The echoes of one request on one socket: what was sent when, what came back."""

    def __init__(
        self,
        sock: _EchoSocket,
        echoes: Echoes,
        *,
        reply_type: int,
        on_event: EventSink | None = None,
    ) -> None:
        self.sock = sock
        self.echoes = echoes
        self.reply_type = reply_type
        self.on_event = on_event or ignore_event
        self.payload = secrets.token_bytes(PAYLOAD_BYTES)
        self.sent_at: dict[int, float] = {}
        self.replies: dict[int, Reply] = {}
        self.lost: set[int] = set()
        self.timers: list[asyncio.TimerHandle] = []
        self.complete = asyncio.Event()

    def _settled(self) -> None:
        if len(self.replies) + len(self.lost) == self.echoes.count:
            self.complete.set()

    def expire(self, seq: int) -> None:
        """Echo `seq` had its whole timeout: count it lost, unless its reply came first."""
        if seq in self.replies or seq in self.lost:
            return
        self.lost.add(seq)
        self.on_event(Lost(seq))
        self._settled()

    def finish(self) -> None:
        """At the end (deadline or last wait over): every echo not yet settled is lost."""
        for seq in sorted(self.sent_at):
            self.expire(seq)

    def on_readable(self) -> None:
        """Drain the socket; keep replies that are ours, in time, and not duplicates."""
        for _ in range(DRAIN_LIMIT):
            try:
                data = self.sock.recv(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # A queued ICMP error (unreachable) for an earlier echo: that echo is lost.
                continue
            now = time.perf_counter()
            if len(data) < _HEADER.size:
                continue
            kind, code, _checksum, _ident, seq = _HEADER.unpack_from(data)
            if kind != self.reply_type or code != 0 or data[_HEADER.size :] != self.payload:
                continue
            sent = self.sent_at.get(seq)
            if (
                sent is None
                or seq in self.replies
                or seq in self.lost
                or now - sent > self.echoes.timeout
            ):
                continue
            reply = Reply(seq, (now - sent) * 1000.0)
            self.replies[seq] = reply
            self.on_event(reply)
            self._settled()

    def send(self, seq: int, address: Address, request_type: int) -> None:
        """Send echo `seq`; a send error (no route) only means that echo is lost, unless it
        says the host has no IPv6 at all: that is an error, not 100 % loss."""
        packet = _HEADER.pack(request_type, 0, 0, 0, seq) + self.payload
        self.sent_at[seq] = time.perf_counter()
        loop = asyncio.get_running_loop()
        self.timers.append(loop.call_later(self.echoes.timeout, self.expire, seq))
        try:
            self.sock.sendto(packet, (str(address), 0))
        except OSError as exc:
            no_ipv6 = ipv6_unavailable(exc.errno) if address.version == 6 else None
            if no_ipv6 is not None:
                raise no_ipv6 from None


class DatagramBackend(PingBackend):
    """Echo requests from this process over a fresh ping socket per request (asyncio)."""

    name = "datagram"

    async def ping(
        self, address: Address, echoes: Echoes, on_event: EventSink | None = None
    ) -> PingResult:
        """See `PingBackend.ping`; sequence numbers run from 1 to `echoes.count`."""
        v4 = isinstance(address, IPv4Address)
        family = socket.AF_INET if v4 else socket.AF_INET6
        request_type, reply_type = (
            (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY) if v4 else (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY)
        )
        loop = asyncio.get_running_loop()
        sock = open_socket(family)
        exchange = _Exchange(sock, echoes, reply_type=reply_type, on_event=on_event)
        try:
            loop.add_reader(sock.fileno(), exchange.on_readable)
            # Both the deadline and the wait after the last echo end in TimeoutError, which
            # only means "stop waiting": what arrived so far is the result.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(echoes.deadline):
                    for seq in range(1, echoes.count + 1):
                        if seq > 1:
                            await asyncio.sleep(echoes.interval)
                        exchange.send(seq, address, request_type)
                    last_expiry = exchange.sent_at[echoes.count] + echoes.timeout
                    async with asyncio.timeout(max(0.0, last_expiry - time.perf_counter())):
                        await exchange.complete.wait()
        finally:
            # Also on cancellation (a client gone): no reader, no timer, no socket is left.
            loop.remove_reader(sock.fileno())
            sock.close()
            for timer in exchange.timers:
                timer.cancel()
        exchange.finish()
        return PingResult.build(
            address,
            sent=len(exchange.sent_at),
            replies=list(exchange.replies.values()),
            backend=self.name,
        )
