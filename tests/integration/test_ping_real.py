"""Real ICMP echoes to loopback through each backend, the real server and the CLI.

Pings go only to 127.0.0.1 and ::1. The datagram backend needs `net.ipv4.ping_group_range`
to include our group: the `icmp_sockets` fixture opens it (as root) and restores the old
value afterwards; it is set before any server that should use datagram sockets starts.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from ipaddress import ip_address

import pytest

from ping_fakes import PING_GROUP_RANGE, datagram_icmp_allowed
from pingcalc.ping import (
    DatagramBackend,
    PingBackend,
    PingResult,
    SubprocessBackend,
    deadline_for,
    parse_target,
    select_backend,
)
from pingcalc.ping.selection import find_ping
from preflight import require
from tests_support import PINGCALC, LiveServer


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
    return asyncio.run(
        backend.ping(
            parse_target(target),
            count=count,
            timeout=1.0,
            interval=0.2,
            deadline=deadline_for(count, timeout=1.0, interval=0.2),
        )
    )


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


@pytest.mark.parametrize("target", LOOPBACKS)
def test_real_server_pings_with_datagram_backend(
    target: str, icmp_sockets: None, server_factory: Callable[..., LiveServer]
) -> None:
    """The real server, sysctl open before start, answers with the in-process backend."""
    server = server_factory(env={"PINGCALC_PING_BACKEND": "datagram"})
    body = _ping_over_http(server, target, 2)
    assert (body["backend"], body["received"], body["loss_percent"]) == ("datagram", 2, 0.0)
    log = server.log_text()
    assert '"ping_backend_selected"' in log and '"backend":"datagram"' in log
    assert '"event":"ping"' in log


@pytest.mark.parametrize("target", LOOPBACKS)
def test_real_server_pings_with_subprocess_backend(
    target: str, ping_path: str, server_factory: Callable[..., LiveServer]
) -> None:
    """The real server with the fallback backend answers the same result model."""
    server = server_factory(env={"PINGCALC_PING_BACKEND": "subprocess"})
    body = _ping_over_http(server, target, 2)
    assert (body["backend"], body["received"], body["loss_percent"]) == ("subprocess", 2, 0.0)
    assert '"backend":"subprocess"' in server.log_text()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PINGCALC, "ping", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_cli_pings_loopback_with_the_same_engine(ping_path: str) -> None:
    """`pingcalc ping 127.0.0.1 --count 2` prints a summary and exits 0."""
    result = _cli("127.0.0.1", "--count", "2", "--backend", "subprocess")
    assert result.returncode == 0, result.stderr
    assert "PING 127.0.0.1 (IPv4): 2 sent, 2 received, 0% loss" in result.stdout
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
        ("127.0.0.1;id", "cannot appear in an IP address"),
        ("-f", "starts with '-'"),
    ],
)
def test_cli_refuses_rejected_targets_with_exit_2(target: str, fragment: str) -> None:
    """The CLI applies the same parser and policy and exits 2 without pinging."""
    result = _cli("--", target) if target.startswith("-") else _cli(target)
    assert result.returncode == 2
    assert fragment in result.stderr and result.stdout == ""
