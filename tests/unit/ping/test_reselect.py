"""Choosing the ping backend again while none works, the binary's safety checks, the notice.

No packet is sent: the datagram backend and the probes are replaced by fakes (TM-18, T1574).
"""

from __future__ import annotations

import asyncio
import io
import os
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from ping_fakes import RecordingBackend, ping_script
from pingcalc.ping import (
    BackendUnavailableError,
    Echoes,
    FamilyUnavailableError,
    PingResult,
    ReselectingBackend,
    SubprocessBackend,
)
from pingcalc.ping import selection as select_module
from pingcalc.ping.notice import announce, plain_text
from pingcalc.ping.selection import RESELECT_INTERVAL_SECONDS, check_binary

LOOPBACK = ip_address("127.0.0.1")
FIX = 'sysctl -w net.ipv4.ping_group_range="0 2147483647"'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Host:
    """What selection sees: whether ping sockets are permitted, and the probes it made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sockets_allowed = False
        self.probes = 0
        self.sent = RecordingBackend(name="datagram")

        def probe() -> str | None:
            self.probes += 1
            return None if self.sockets_allowed else "not permitted (net.ipv4.ping_group_range)"

        monkeypatch.setattr(select_module, "probe_datagram", probe)
        monkeypatch.setattr(select_module, "DatagramBackend", lambda: self.sent)


def _ping(backend: ReselectingBackend) -> PingResult:
    return asyncio.run(backend.ping(LOOPBACK, Echoes(count=1, timeout=1, interval=0.2, deadline=2)))


def test_reselects_at_most_once_per_interval_and_reports_the_switch_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many pings while nothing works make one probe per interval, not one each (T1499); the
    first ping after the sysctl opens and the interval passes works, and is reported once."""
    host, clock = Host(monkeypatch), Clock()
    switches: list[dict[str, Any]] = []
    backend = ReselectingBackend(
        "auto", ping_path="/nonexistent/ping", on_switch=switches.append, clock=clock
    )
    assert not backend.status().available and FIX in backend.status().fix
    probes = host.probes
    for _ in range(50):
        with pytest.raises(BackendUnavailableError):
            _ping(backend)
    assert host.probes == probes  # within the interval: no probe at all
    host.sockets_allowed = True
    with pytest.raises(BackendUnavailableError):
        _ping(backend)  # still inside the interval
    clock.now += RESELECT_INTERVAL_SECONDS
    assert _ping(backend).received == 1
    assert len(host.sent.calls) == 1 and backend.name == "datagram"
    assert backend.status().available
    _ping(backend)
    assert switches == [
        {
            "backend": "datagram",
            "previous": "unavailable",
            "reason": "datagram ICMP sockets are permitted (no subprocess)",
            "available": True,
        }
    ]


def test_backend_failing_at_run_time_is_replaced_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The chosen backend stops working (sysctl closed later): the binary takes over."""
    host, clock = Host(monkeypatch), Clock()
    switches: list[dict[str, Any]] = []
    host.sockets_allowed = True
    backend = ReselectingBackend(
        "auto", ping_path=ping_script(tmp_path), on_switch=switches.append, clock=clock
    )
    host.sockets_allowed = False
    monkeypatch.setattr(host.sent, "ping", _refuse)
    replaced: list[Any] = []

    async def fallback(address: Any) -> PingResult:
        replaced.append(address)
        return PingResult.build(address, sent=1, replies=[], backend="subprocess")

    monkeypatch.setattr(SubprocessBackend, "ping", lambda self, address, *_: fallback(address))
    clock.now += RESELECT_INTERVAL_SECONDS
    assert _ping(backend).backend == "subprocess"
    assert replaced == [LOOPBACK] and backend.name == "subprocess"
    assert [s["backend"] for s in switches] == ["subprocess"]


async def _refuse(*_args: Any, **_kwargs: Any) -> PingResult:
    raise BackendUnavailableError("datagram ICMP sockets are not permitted")


def test_no_ipv6_does_not_make_the_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "IPv6 is not available" is an answer about the host, not a broken backend."""
    host = Host(monkeypatch)
    host.sockets_allowed = True
    backend = ReselectingBackend("auto", clock=Clock())

    async def no_ipv6(*_args: Any, **_kwargs: Any) -> PingResult:
        raise FamilyUnavailableError("IPv6 is not available on this host (no IPv6 address)")

    monkeypatch.setattr(host.sent, "ping", no_ipv6)
    with pytest.raises(FamilyUnavailableError) as caught:
        _ping(backend)
    assert caught.value.detail.endswith("ping an IPv4 address")
    assert backend.status().available


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("relative", "not an absolute path"),
        ("missing", "no ping binary at"),
        ("group-writable", "could be replaced by another user"),
        ("not-executable", "not an executable file"),
    ],
)
def test_configured_binary_must_be_safe_to_run(tmp_path: Path, setup: str, fragment: str) -> None:
    """PINGCALC_PING_BINARY is never looked up in PATH and never run if others could replace it
    (binary planting, T1574)."""
    path = tmp_path / "ping"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod({"group-writable": 0o775, "not-executable": 0o644}.get(setup, 0o755))
    given = {"relative": "ping", "missing": str(tmp_path / "absent")}.get(setup, str(path))
    problem = check_binary(given)
    assert problem is not None and fragment in problem
    path.chmod(0o755)
    assert check_binary(str(path)) is None  # the legitimate binary is accepted


def test_notice_is_a_warning_and_plain_text_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Start-up: no backend is a WARNING with the fix; a terminal also gets plain text."""
    Host(monkeypatch)
    status = ReselectingBackend("auto", ping_path="/nonexistent/ping").status()

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    announce(status, stderr=terminal)
    announce(status, stderr=pipe)
    assert terminal.getvalue() == plain_text(status) and pipe.getvalue() == ""
    assert f"{os.getgid()} {os.getgid()}" in status.fix and FIX in terminal.getvalue()
    logged = capsys.readouterr().out
    assert logged.count("ping_unavailable") == 2 and "warning" in logged
