"""Result model, backend selection and the subprocess backend's argv and bounds (T1059, T1499)."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from ipaddress import IPv6Address, ip_address
from pathlib import Path

import pytest

from ping_fakes import ping_script
from pingcalc.ping import (
    BackendUnavailableError,
    DatagramBackend,
    Echoes,
    PingResult,
    Reply,
    RttStats,
    SubprocessBackend,
    UnavailableBackend,
    deadline_for,
    select_backend,
)
from pingcalc.ping import selection as select_module
from pingcalc.ping.datagram import ICMP_ECHO_REPLY, _Exchange
from pingcalc.ping.subprocess_backend import MIN_INTERVAL_SECONDS, build_argv, parse_output
from tests_support import PING_RESULT_KEYS

LOOPBACK_V4 = ip_address("127.0.0.1")
LOOPBACK_V6 = ip_address("::1")


def test_the_ping_engine_loads_no_http_code() -> None:
    """`pingcalc.ping` stays HTTP-free: importing it loads no web framework and no part of
    `pingcalc.api` (the layering that keeps its checks testable without a server)."""
    probe = (
        "import sys, pingcalc.ping; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('uvicorn', 'fastapi', 'starlette', 'httptools') or m.startswith('pingcalc.api')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert loaded == "[]"


def test_rtt_stats_match_population_statistics() -> None:
    """min/avg/max/stddev are the population statistics iputils reports as mdev."""
    samples = [0.12, 0.5, 0.31, 1.7]
    stats = RttStats.from_samples(samples)
    assert stats is not None
    assert (stats.min, stats.max) == (min(samples), max(samples))
    assert stats.avg == pytest.approx(statistics.fmean(samples))
    assert stats.stddev == pytest.approx(statistics.pstdev(samples))
    assert RttStats.from_samples([]) is None


def test_result_with_no_reply_is_full_loss_not_error() -> None:
    """No reply is a normal result: 100 % loss, no RTT statistics."""
    result = PingResult.build(LOOPBACK_V4, sent=3, replies=[], backend="x")
    body = result.to_dict()
    assert body["loss_percent"] == 100.0 and body["rtt_ms"] is None and body["replies"] == []
    assert (body["sent"], body["received"], body["family"]) == (3, 0, 4)


def test_result_counts_partial_loss_and_orders_replies() -> None:
    """Loss is computed from what was sent and received; replies come out in sequence order."""
    result = PingResult.build(
        LOOPBACK_V6, sent=4, replies=[Reply(3, 0.2), Reply(1, 0.4)], backend="x"
    )
    assert result.loss_percent == 50.0 and result.family == 6
    assert [r.seq for r in result.replies] == [1, 3]
    assert set(result.to_dict()) == PING_RESULT_KEYS


def test_deadline_grows_with_count_and_timeout() -> None:
    """The total deadline covers every interval and the last reply wait, plus bounded slack."""
    assert deadline_for(1, timeout=1.0, interval=0.2) < deadline_for(5, timeout=1.0, interval=0.2)
    assert deadline_for(5, timeout=2.0, interval=1.0) <= 4 * 1.0 + 2.0 + 1.0


# --- subprocess backend --------------------------------------------------------------------


def test_argv_is_fixed_and_ends_with_normalised_address() -> None:
    """The argv is a list (no shell), options first, `--`, then only the normalised address."""
    mapped = IPv6Address("::ffff:7f00:1").ipv4_mapped
    assert mapped is not None
    argv = build_argv("/usr/bin/ping", mapped, Echoes.bounded(3, timeout=1.0, interval=0.2))
    assert argv == [
        "/usr/bin/ping",
        "-4",
        "-n",
        "-c",
        "3",
        "-W",
        "1",
        "-i",
        "0.2",
        "--",
        "127.0.0.1",
    ]
    one = Echoes.bounded(1, timeout=0.5, interval=0.0)
    argv6 = build_argv("/usr/bin/ping", ip_address("0:0::1"), one)
    assert argv6 == ["/usr/bin/ping", "-6", "-n", "-c", "1", "-W", "0.5", "--", "::1"]


def test_argv_interval_respects_unprivileged_minimum() -> None:
    """An interval below iputils' 200 ms user minimum is raised to it instead of failing."""
    argv = build_argv("/usr/bin/ping", LOOPBACK_V4, Echoes.bounded(2, timeout=1.0, interval=0.0))
    assert argv[argv.index("-i") + 1] == str(MIN_INTERVAL_SECONDS)


IPUTILS_OUTPUT = b"""PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.058 ms
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.070 ms (DUP!)
64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=12.5 ms
64 bytes from 127.0.0.1: icmp_seq=9 ttl=64 time=0.1 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 2 received, +1 duplicates, 33.3333% packet loss, time 401ms
"""


def test_output_parser_drops_duplicates_and_foreign_sequences() -> None:
    """Duplicates and sequence numbers outside the request are not counted as replies."""
    sent, replies = parse_output(IPUTILS_OUTPUT, Echoes.bounded(3, timeout=1.0, interval=0.2))
    assert sent == 3
    assert [(r.seq, r.rtt_ms) for r in replies] == [(1, 0.058), (3, 12.5)]


def test_subprocess_backend_kills_ping_at_the_deadline(tmp_path: Path) -> None:
    """A ping that hangs is stopped at the deadline: the request cannot pin a worker (T1499)."""
    pid_file = tmp_path / "pid"
    backend = SubprocessBackend(ping_script(tmp_path, f"echo $$ > {pid_file}\nexec sleep 30\n"))
    started = time.monotonic()
    result = asyncio.run(
        backend.ping(LOOPBACK_V4, Echoes(count=1, timeout=0.2, interval=0.2, deadline=0.5))
    )
    assert time.monotonic() - started < 2.0
    assert result.received == 0 and result.loss_percent == 100.0
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # reaped by asyncio shortly after the kill
            os.kill(pid, 0)
            time.sleep(0.02)


def test_subprocess_backend_reports_a_ping_that_cannot_run(tmp_path: Path) -> None:
    """A permission failure is BackendUnavailableError (503), not a silent 100 % loss."""
    backend = SubprocessBackend(
        ping_script(tmp_path, 'echo "ping: socket: Operation not permitted" >&2\nexit 2\n')
    )
    with pytest.raises(BackendUnavailableError, match="Operation not permitted"):
        asyncio.run(
            backend.ping(LOOPBACK_V4, Echoes(count=1, timeout=0.2, interval=0.2, deadline=2))
        )


def test_subprocess_backend_passes_no_shell_and_a_minimal_environment(tmp_path: Path) -> None:
    """The fake ping sees exactly the argv (one item per argument) and no inherited secrets."""
    out = tmp_path / "seen"
    backend = SubprocessBackend(
        ping_script(tmp_path, f'printf "%s\\n" "$@" > {out}\nenv | sort >> {out}\nexit 1\n')
    )
    os.environ["PINGCALC_LEAK_CHECK"] = "secret"
    try:
        echoes = Echoes(count=2, timeout=0.3, interval=0.2, deadline=2)
        result = asyncio.run(backend.ping(LOOPBACK_V4, echoes))
    finally:
        del os.environ["PINGCALC_LEAK_CHECK"]
    seen = out.read_text().splitlines()
    assert seen[:10] == ["-4", "-n", "-c", "2", "-W", "0.3", "-i", "0.2", "--", "127.0.0.1"]
    assert not any("PINGCALC_LEAK_CHECK" in line for line in seen)
    assert result.sent == 2 and result.received == 0


# --- selection -----------------------------------------------------------------------------


@pytest.fixture
def fake_ping(tmp_path: Path) -> str:
    """An executable that stands for the ping binary (selection only checks it may run)."""
    return ping_script(tmp_path)


def test_auto_prefers_datagram_when_permitted(
    monkeypatch: pytest.MonkeyPatch, fake_ping: str
) -> None:
    """With ping sockets permitted, no subprocess is used."""
    monkeypatch.setattr(select_module, "probe_datagram", lambda: None)
    backend, reason = select_backend("auto", ping_path=fake_ping)
    assert isinstance(backend, DatagramBackend) and "permitted" in reason


def test_auto_falls_back_to_ping_binary(monkeypatch: pytest.MonkeyPatch, fake_ping: str) -> None:
    """Without ping sockets, auto uses the ping binary and says why."""
    monkeypatch.setattr(select_module, "probe_datagram", lambda: "not permitted (sysctl)")
    backend, reason = select_backend("auto", ping_path=fake_ping)
    assert isinstance(backend, SubprocessBackend) and "sysctl" in reason


def test_auto_without_any_backend_refuses_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither works: the server still starts, and every ping is a clear 503-style error."""
    monkeypatch.setattr(select_module, "probe_datagram", lambda: "not permitted")
    monkeypatch.setattr(select_module, "find_ping", lambda: None)
    backend, reason = select_backend("auto")
    assert isinstance(backend, UnavailableBackend) and "no ping binary" in reason
    with pytest.raises(BackendUnavailableError):
        asyncio.run(backend.ping(LOOPBACK_V4, Echoes(count=1, timeout=1, interval=1, deadline=1)))


def test_explicit_backend_that_cannot_work_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's explicit choice that cannot work stops start-up with the reason."""
    monkeypatch.setattr(select_module, "probe_datagram", lambda: "not permitted")
    monkeypatch.setattr(select_module, "find_ping", lambda: None)
    with pytest.raises(BackendUnavailableError, match="datagram"):
        select_backend("datagram")
    with pytest.raises(BackendUnavailableError, match="subprocess"):
        select_backend("subprocess")


# --- datagram reply matching ---------------------------------------------------------------


def test_datagram_exchange_accepts_only_its_own_timely_replies() -> None:
    """Forged, foreign, duplicate, late and non-reply datagrams are not counted (spoofing)."""
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    exchange = _Exchange(
        ours, Echoes.bounded(3, timeout=0.5, interval=0.2), reply_type=ICMP_ECHO_REPLY
    )
    now = time.perf_counter()
    exchange.sent_at.update({1: now, 2: now, 3: now - 5.0})

    def datagram(kind: int, seq: int, payload: bytes) -> bytes:
        return struct.pack("!BBHHH", kind, 0, 0, 0, seq) + payload

    try:
        peer.send(datagram(ICMP_ECHO_REPLY, 1, b"x" * 16))  # wrong payload
        peer.send(datagram(8, 1, exchange.payload))  # an echo request, not a reply
        peer.send(datagram(ICMP_ECHO_REPLY, 7, exchange.payload))  # never sent
        peer.send(b"\x00\x01")  # truncated
        peer.send(datagram(ICMP_ECHO_REPLY, 3, exchange.payload))  # too late
        peer.send(datagram(ICMP_ECHO_REPLY, 2, exchange.payload))  # ours
        peer.send(datagram(ICMP_ECHO_REPLY, 2, exchange.payload))  # duplicate
        exchange.on_readable()
    finally:
        ours.close()
        peer.close()
    assert list(exchange.replies) == [2]
    assert not exchange.complete.is_set()
