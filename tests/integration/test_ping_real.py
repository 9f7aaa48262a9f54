"""Real ICMP echoes to loopback through each backend, the real server and the CLI.

Pings go only to 127.0.0.1 and ::1. The datagram backend needs `net.ipv4.ping_group_range`
to include our group: the `icmp_sockets` fixture opens it (as root) and restores the old
value afterwards; it is set before any server that should use datagram sockets starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from typing import Any

import pytest

from dns_server import DnsServer
from ping_fakes import PING_GROUP_RANGE, datagram_icmp_allowed
from pingcalc.ping import (
    DatagramBackend,
    Echoes,
    PingBackend,
    PingEvent,
    PingPlan,
    PingResult,
    Reply,
    SubprocessBackend,
    SystemResolver,
    TargetPolicy,
    parse_target,
    resolve_target,
    select_backend,
)
from pingcalc.ping import datagram as datagram_module
from pingcalc.ping.selection import find_ping
from preflight import require
from tests_support import PINGCALC, LiveServer, run_pingcalc


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


LOOPBACKS = [
    "127.0.0.1",
    pytest.param(
        "::1",
        marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1)"),
    ),
]


@pytest.fixture
def icmp_sockets() -> Iterator[None]:
    """Datagram ICMP sockets permitted for the test; the previous sysctl value restored."""
    before = PING_GROUP_RANGE.read_text()
    with datagram_icmp_allowed():
        yield
    assert PING_GROUP_RANGE.read_text() == before


@pytest.fixture
def ping_path() -> str:
    """The system ping (apt package iputils-ping, installed by the CI script)."""
    require("ping-binary")
    path = find_ping()
    assert path is not None
    return path


def _ping(backend: PingBackend, target: str, count: int = 3) -> PingResult:
    echoes = Echoes.bounded(count, timeout=1.0, interval=0.2)
    return asyncio.run(backend.ping(parse_target(target), echoes))


def _assert_all_answered(result: PingResult, target: str, count: int, backend: str) -> None:
    assert result.target == str(ip_address(target))
    assert (result.sent, result.received, result.loss_percent) == (count, count, 0.0)
    assert [r.seq for r in result.replies] == list(range(1, count + 1))
    assert result.rtt is not None and 0 < result.rtt.min <= result.rtt.avg <= result.rtt.max < 1000
    assert result.backend == backend


@pytest.mark.parametrize("target", LOOPBACKS)
def test_datagram_backend_pings_loopback(target: str, icmp_sockets: None) -> None:
    """In-process echo over a ping socket: no subprocess, every echo answered."""
    _assert_all_answered(_ping(DatagramBackend(), target), target, 3, "datagram")


@pytest.mark.parametrize("target", LOOPBACKS)
def test_subprocess_backend_pings_loopback(target: str, ping_path: str) -> None:
    """The ping binary with a fixed argv: every echo answered and parsed."""
    _assert_all_answered(_ping(SubprocessBackend(ping_path), target), target, 3, "subprocess")


def test_auto_selects_datagram_when_the_sysctl_allows_it(icmp_sockets: None) -> None:
    """With ping sockets permitted, auto picks the in-process backend."""
    backend, reason = select_backend("auto")
    assert isinstance(backend, DatagramBackend), reason


def _ping_over_http(server: LiveServer, target: str, count: int) -> dict[str, object]:
    with server.client("pinger") as client:
        response = client.post("/api/v1/ping", json={"target": target, "count": count})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        assert client.get("/healthz").status_code == 200
    return body


@pytest.fixture(params=["datagram", "subprocess"])
def usable_backend(request: pytest.FixtureRequest) -> str:
    """The name of each backend in turn, with what it needs: datagram ICMP sockets permitted
    (`icmp_sockets`) or the ping binary (`ping_path`)."""
    backend: str = request.param
    request.getfixturevalue("icmp_sockets" if backend == "datagram" else "ping_path")
    return backend


@pytest.mark.parametrize("target", LOOPBACKS)
def test_real_server_pings_with_each_backend(
    target: str, usable_backend: str, server_factory: Callable[..., LiveServer]
) -> None:
    """The real server, started with the backend chosen (datagram: the sysctl opened before
    start), logs its choice and answers the same result model with it."""
    server = server_factory(env={"PINGCALC_PING_BACKEND": usable_backend})
    body = _ping_over_http(server, target, 2)
    assert (body["backend"], body["received"], body["loss_percent"]) == (usable_backend, 2, 0.0)
    log = server.log_text()
    assert '"ping_backend_selected"' in log and f'"backend":"{usable_backend}"' in log
    assert '"event":"ping"' in log


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_pingcalc("ping", *args, env=env)


def test_cli_pings_loopback_with_the_same_engine(ping_path: str) -> None:
    """`pingcalc ping 127.0.0.1 --count 2` prints a summary and exits 0."""
    result = _cli("127.0.0.1", "--count", "2", "--backend", "subprocess")
    assert result.returncode == 0, result.stderr
    assert "127.0.0.1 (IPv4): 2 sent, 2 received, 0% loss" in result.stdout
    assert "seq=2" in result.stdout and "rtt min/avg/max/stddev" in result.stdout


def test_cli_json_output_with_datagram_backend(icmp_sockets: None) -> None:
    """`--json` prints the API's result shape."""
    result = _cli("127.0.0.1", "--count", "1", "--backend", "datagram", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert (body["backend"], body["received"], body["target"]) == ("datagram", 1, "127.0.0.1")


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("169.254.169.254", "link-local, which this server does not ping"),
        ("127.0.0.1;id", "contains ';'"),
        ("-f", "starts with '-'"),
    ],
)
def test_cli_refuses_rejected_targets_with_exit_2(target: str, fragment: str) -> None:
    """The CLI applies the same parser and policy and exits 2 without pinging."""
    result = _cli("--", target) if target.startswith("-") else _cli(target)
    assert result.returncode == 2
    assert fragment in result.stderr and result.stdout == ""


# --- live replies, cancellation and host names ----------------------------------------------


# (seconds since start, item) for each item of a stream.
Stamped = list[tuple[float, PingEvent | PingResult]]


def _stamped_stream(backend: PingBackend, target: str, count: int) -> Stamped:
    """(seconds since start, item) for each item of a stream, the result last."""

    async def run() -> Stamped:
        started = time.monotonic()
        echoes = Echoes.bounded(count, timeout=1.0, interval=0.2)
        stream = backend.stream(parse_target(target), echoes)
        async with contextlib.aclosing(stream) as events:
            return [(time.monotonic() - started, item) async for item in events]

    return asyncio.run(run())


def _assert_live(stamped: Stamped, target: str, backend: str) -> None:
    items = [item for _, item in stamped]
    replies = [item for item in items[:3] if isinstance(item, Reply)]
    assert replies == items[:3] and [reply.seq for reply in replies] == [1, 2, 3]
    result = items[3]
    assert isinstance(result, PingResult)
    _assert_all_answered(result, target, 3, backend)
    # The first reply was reported while echoes 2 and 3 were still to be sent (0.2 s apart).
    assert stamped[0][0] < stamped[3][0] - 0.25


@pytest.mark.parametrize("target", LOOPBACKS)
def test_datagram_stream_reports_each_reply_as_it_arrives(target: str, icmp_sockets: None) -> None:
    """Live replies from the in-process backend, then the same result `ping()` gives."""
    _assert_live(_stamped_stream(DatagramBackend(), target, 3), target, "datagram")


@pytest.mark.parametrize("target", LOOPBACKS)
def test_subprocess_stream_reports_each_reply_as_it_arrives(target: str, ping_path: str) -> None:
    """Live replies parsed from ping's output line by line, then the usual result."""
    _assert_live(_stamped_stream(SubprocessBackend(ping_path), target, 3), target, "subprocess")


async def _cancel_after_first_event(backend: PingBackend) -> None:
    """Read a 5-echo stream to 127.0.0.1 and cancel the reader after its first event."""
    first = asyncio.Event()

    async def consume() -> None:
        echoes = Echoes(count=5, timeout=1.0, interval=0.5, deadline=10.0)
        stream = backend.stream(parse_target("127.0.0.1"), echoes)
        async with contextlib.aclosing(stream) as events:
            async for _ in events:
                first.set()

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_cancelled_datagram_stream_closes_its_socket_at_once(
    icmp_sockets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that disconnects mid-stream releases the ping socket before anything else runs."""
    opened: list[socket.socket] = []
    real_open = datagram_module.open_socket

    def recording_open(family: socket.AddressFamily) -> socket.socket:
        sock = real_open(family)
        opened.append(sock)
        return sock

    monkeypatch.setattr(datagram_module, "open_socket", recording_open)
    started = time.monotonic()
    asyncio.run(_cancel_after_first_event(DatagramBackend()))
    assert time.monotonic() - started < 1.5  # not the 2 s the five echoes would take
    assert len(opened) == 1 and opened[0].fileno() == -1


def test_cancelled_subprocess_stream_kills_ping(
    ping_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that disconnects mid-stream leaves no ping process behind."""
    processes: list[asyncio.subprocess.Process] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await real_exec(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    asyncio.run(_cancel_after_first_event(SubprocessBackend(ping_path)))
    assert len(processes) == 1 and processes[0].returncode is not None  # killed and reaped
    with pytest.raises(ProcessLookupError):
        os.kill(processes[0].pid, 0)


def test_name_from_etc_hosts_is_pinged_at_its_checked_loopback_address(
    ping_path: str, etc_hosts_name: str
) -> None:
    """The system resolver reads /etc/hosts: the name is resolved once and pinged by address."""

    async def run() -> PingResult:
        plan = PingPlan(Echoes(count=2, timeout=1.0, interval=0.2, deadline=3.0), family=4)
        resolver = SystemResolver(timeout=2.0, max_in_flight=2)
        destination = await resolve_target(
            etc_hosts_name, policy=TargetPolicy(), resolver=resolver, family=4
        )
        return await plan.run(SubprocessBackend(ping_path), destination)

    result = asyncio.run(run())
    assert (result.name, result.target, result.received) == (etc_hosts_name, "127.0.0.1", 2)


def test_cli_pings_a_host_name_from_etc_hosts(ping_path: str, etc_hosts_name: str) -> None:
    """`pingcalc ping NAME --family 4` resolves with the system resolver and pings."""
    result = _cli(etc_hosts_name, "--count", "2", "--family", "4", "--backend", "subprocess")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"PING {etc_hosts_name} (127.0.0.1, IPv4): 2 echo requests\n")
    assert f"{etc_hosts_name} (127.0.0.1, IPv4): 2 sent, 2 received, 0% loss" in result.stdout


def test_cli_pings_localhost_without_a_lookup(ping_path: str) -> None:
    """RFC 6761 §6.3: `localhost` is the loopback address, answered by pingcalc itself."""
    result = _cli("localhost", "--count", "1", "--family", "4", "--backend", "subprocess")
    assert result.returncode == 0, result.stderr
    assert "localhost (127.0.0.1, IPv4): 1 sent, 1 received, 0% loss" in result.stdout


def test_cli_prints_each_reply_as_it_arrives(ping_path: str) -> None:
    """Each reply line is flushed when it happens, not when the ping is over."""
    process = subprocess.Popen(
        [PINGCALC, "ping", "127.0.0.1", "--count", "3", "--backend", "subprocess"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    stamped: list[tuple[float, str]] = []
    try:
        for line in process.stdout:
            stamped.append((time.monotonic(), line))
    finally:
        process.wait(timeout=30)
    seq1 = next(t for t, line in stamped if "seq=1 " in line)
    summary = next(t for t, line in stamped if " sent, " in line)
    assert process.returncode == 0 and summary - seq1 > 0.25  # echoes 2 and 3 came later


def test_cli_json_lines_prints_one_line_per_event_then_the_result(ping_path: str) -> None:
    """`--json-lines`: an event object per echo as it happens, then the API's result object."""
    result = _cli("127.0.0.1", "--count", "2", "--backend", "subprocess", "--json-lines")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["event"], e["seq"]) for e in lines[:2]] == [("reply", 1), ("reply", 2)]
    assert len(lines) == 3 and "event" not in lines[2] and lines[2]["received"] == 2


def test_cli_refuses_a_name_with_a_private_address_before_any_backend(
    dns_server: DnsServer,
) -> None:
    """TM-32: the CLI resolves through the configured server and refuses the name, exit 2."""
    dns_server.add("internal.test", "A", "10.0.0.7")
    result = _cli("internal.test", PINGCALC_PING_RESOLVER=dns_server.url)
    assert result.returncode == 2 and result.stdout == ""
    assert "internal.test resolves to 10.0.0.7, which is private" in result.stderr
    assert "backend:" not in result.stderr  # refused before a backend was even chosen
    assert dns_server.asked("internal.test")


def test_cli_reports_unknown_names_and_lookup_timeouts(dns_server: DnsServer) -> None:
    """An unknown name exits 2 (bad input); a silent name server exits 1 within the timeout."""
    env = {"PINGCALC_PING_RESOLVER": dns_server.url, "PINGCALC_PING_RESOLVE_TIMEOUT_SECONDS": "0.5"}
    unknown = _cli("nosuch.test", **env)
    assert unknown.returncode == 2 and "nosuch.test does not exist" in unknown.stderr
    dns_server.silent.add("tarpit.test")
    started = time.monotonic()
    silent = _cli("tarpit.test", **env)
    assert silent.returncode == 1 and "tarpit.test" in silent.stderr
    assert time.monotonic() - started < 10
