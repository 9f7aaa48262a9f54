"""Live events: one reply or timeout per echo as it happens, then the usual result (T1499)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from ipaddress import ip_address
from pathlib import Path

import pytest

from ping_fakes import RecordingBackend, ping_script
from pingcalc.ping import Echoes, Lost, PingEvent, PingResult, Reply, SubprocessBackend
from pingcalc.ping.datagram import ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, _Exchange

LOOPBACK = ip_address("127.0.0.1")
# Five echoes a second apart, with time to spare: a stream that is still running when cut.
FIVE_SLOW = Echoes(count=5, timeout=1.0, interval=1.0, deadline=30.0)


def _quick(count: int) -> Echoes:
    return Echoes(count=count, timeout=0.3, interval=0.2, deadline=3.0)


def _collect(
    backend: RecordingBackend | SubprocessBackend, count: int = 3
) -> list[PingEvent | PingResult]:
    async def run() -> list[PingEvent | PingResult]:
        stream = backend.stream(LOOPBACK, _quick(count))
        async with contextlib.aclosing(stream) as events:
            return [item async for item in events]

    return asyncio.run(run())


def test_stream_yields_each_event_then_the_result_ping_returns() -> None:
    """Replies in order, then a result equal to what `ping()` gives for the same exchange."""
    items = _collect(RecordingBackend(spacing=0.01))
    expected = asyncio.run(RecordingBackend().ping(LOOPBACK, _quick(3)))
    assert items == [Reply(1, 0.05), Reply(2, 0.1), Reply(3, 0.05 * 3), expected]


def test_stream_reports_lost_echoes_as_timeouts() -> None:
    """No reply is an event too: `Lost(seq)`, shown as `{"event": "timeout"}`."""
    items = _collect(RecordingBackend(answer=False), count=2)
    assert items[:2] == [Lost(1), Lost(2)]
    assert [i.to_dict() for i in items[:2]] == [
        {"event": "timeout", "seq": 1},
        {"event": "timeout", "seq": 2},
    ]
    assert isinstance(items[2], PingResult) and items[2].received == 0


def test_leaving_a_stream_early_cancels_the_exchange_at_once() -> None:
    """A consumer that stops (a client gone) stops the echoes; nothing keeps running."""
    backend = RecordingBackend(spacing=5.0)

    async def first_only() -> object:
        stream = backend.stream(LOOPBACK, FIVE_SLOW)
        async with contextlib.aclosing(stream) as events:
            async for item in events:
                return item
        return None

    started = time.monotonic()
    assert asyncio.run(first_only()) == Reply(1, 0.05)
    assert time.monotonic() - started < 2.0 and backend.cancelled == 1


def test_cancelling_the_consumer_cancels_the_exchange() -> None:
    """Cancelling the task that reads the stream (what a server does on disconnect) stops it."""
    backend = RecordingBackend(spacing=5.0)

    async def scenario() -> None:
        seen: list[object] = []
        first = asyncio.Event()

        async def consume() -> None:
            stream = backend.stream(LOOPBACK, FIVE_SLOW)
            async with contextlib.aclosing(stream) as events:
                async for item in events:
                    seen.append(item)
                    first.set()

        task = asyncio.ensure_future(consume())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == [Reply(1, 0.05)]

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert backend.cancelled == 1


class _Socket:
    """The receiving end of a socketpair; sends are recorded instead of reaching a network."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent: list[bytes] = []

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def sendto(self, packet: bytes, address: object) -> int:
        self.sent.append(packet)
        return len(packet)


def test_datagram_exchange_reports_each_reply_and_expiry_once_as_it_happens() -> None:
    """A reply is reported when it arrives, a loss when its timeout fires; a late reply never."""
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    events: list[object] = []

    async def scenario() -> None:
        exchange = _Exchange(
            _Socket(ours),
            Echoes(count=2, timeout=0.2, interval=0.2, deadline=1.0),
            reply_type=ICMP_ECHO_REPLY,
            on_event=events.append,
        )

        def reply(seq: int) -> bytes:
            return struct.pack("!BBHHH", ICMP_ECHO_REPLY, 0, 0, 0, seq) + exchange.payload

        exchange.send(1, LOOPBACK, ICMP_ECHO_REQUEST)
        exchange.send(2, LOOPBACK, ICMP_ECHO_REQUEST)
        peer.send(reply(1))
        exchange.on_readable()
        assert [type(e) for e in events] == [Reply]  # at once, before any timeout
        await asyncio.wait_for(exchange.complete.wait(), 2.0)
        assert events[1:] == [Lost(2)]
        peer.send(reply(2))  # too late: already reported lost
        exchange.on_readable()
        exchange.finish()
        assert [getattr(e, "seq", None) for e in events] == [1, 2] and list(exchange.replies) == [1]

    try:
        asyncio.run(scenario())
    finally:
        ours.close()
        peer.close()


def test_subprocess_backend_reports_reply_lines_as_ping_prints_them(tmp_path: Path) -> None:
    """Each reply line is an event when printed; unanswered echoes are timeouts at the exit."""
    script = ping_script(
        tmp_path,
        'echo "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.05 ms"\n'
        "sleep 0.4\n"
        'echo "64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=0.07 ms"\n'
        'echo "3 packets transmitted, 2 received, 33% packet loss"\n',
    )
    stamps: list[tuple[float, object]] = []

    async def run() -> PingResult:
        return await SubprocessBackend(script).ping(
            LOOPBACK,
            Echoes(count=3, timeout=1.0, interval=0.2, deadline=5.0),
            on_event=lambda e: stamps.append((time.monotonic(), e)),
        )

    result = asyncio.run(run())
    assert [e for _, e in stamps] == [Reply(1, 0.05), Reply(3, 0.07), Lost(2)]
    assert stamps[1][0] - stamps[0][0] >= 0.3  # the first came before ping went on
    assert result.sent == 3 and [r.seq for r in result.replies] == [1, 3]
