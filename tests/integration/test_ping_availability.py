"""A host where no ping backend works, as a newcomer finds it, and the fix applied live.

`net.ipv4.ping_group_range = "1 0"` (datagram ICMP refused for every group) and no ping binary
(hidden by `PINGCALC_PING_BINARY` pointing at a path that does not exist, never by deleting
the real one). The real server must say why and how to fix it (log WARNING, plain text on a
terminal, /readyz degraded, a 503 whose detail names the fix), and once the operator runs the
sysctl, ping must work without a restart. The sysctl is restored whatever happens.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ping_fakes import OPEN_RANGE, PING_GROUP_RANGE, ping_group_range
from tests_support import PINGCALC, Tokens, free_port, process_env

CLOSED_RANGE = "1 0"  # the kernel's default: no group may open datagram ICMP sockets
MISSING_BINARY = "/nonexistent/pingcalc-test/ping"
FIX = 'sysctl -w net.ipv4.ping_group_range="0 2147483647"'
# Re-selection runs at most every 2 s while pings fail; a ping must work well within this.
RECOVERY_BUDGET_S = 6.0


class TerminalServer:
    """`pingcalc serve` with its log (stdout) in a file and its stderr on a pseudo-terminal."""

    def __init__(self, tokens: Tokens, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        master, slave = pty.openpty()
        self.master = master
        env = process_env()
        env |= {
            "PINGCALC_TOKENS_FILE": str(tokens.path),
            "PINGCALC_PORT": str(self.port),
            "PINGCALC_PING_BINARY": MISSING_BINARY,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [PINGCALC, "serve"], stdout=log, stderr=slave, env=env, cwd=workdir
            )
        os.close(slave)
        self.terminal = b""

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"server not healthy: {self.log_path.read_text()}")

    def read_terminal(self, wait: float = 2.0) -> str:
        """What the server wrote to its terminal so far."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.terminal:
                    break
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.terminal += chunk
        return self.terminal.decode("utf-8", "replace").replace("\r\n", "\n")

    def events(self) -> list[dict[str, object]]:
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        os.close(self.master)


@pytest.fixture
def closed_host() -> Iterator[None]:
    """The host default: datagram ICMP refused for every group; the old value restored."""
    before = PING_GROUP_RANGE.read_text()
    with ping_group_range(CLOSED_RANGE):
        yield
    assert PING_GROUP_RANGE.read_text() == before


@pytest.fixture
def server(closed_host: None, tokens: Tokens, tmp_path: Path) -> Iterator[TerminalServer]:
    started = TerminalServer(tokens, tmp_path)
    try:
        started.wait_healthy()
        yield started
    finally:
        started.stop()


def _ping(server: TerminalServer, tokens: Tokens) -> httpx.Response:
    return httpx.post(
        server.url + "/api/v1/ping",
        json={"target": "127.0.0.1", "count": 1},
        headers=tokens.header("pinger"),
        timeout=10,
    )


def test_host_without_ping_warns_reports_degraded_and_recovers_without_restart(
    server: TerminalServer, tokens: Tokens
) -> None:
    """No backend: WARNING with the fix, /readyz degraded, 503 naming the fix; sysctl opened:
    ping works within seconds, same process, and the switch is audited once (TM-18)."""
    warnings = [e for e in server.events() if e.get("event") == "ping_unavailable"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert FIX in str(warnings[0]["fix"]) and "iputils-ping" in str(warnings[0]["fix"])
    assert "ping_group_range" in str(warnings[0]["reason"])
    assert MISSING_BINARY in str(warnings[0]["reason"])
    terminal = server.read_terminal()
    assert "WARNING: ping is unavailable" in terminal and FIX in terminal
    assert not terminal.lstrip().startswith("{")  # plain text, not the JSON log

    ready = httpx.get(server.url + "/readyz", timeout=5)
    assert ready.status_code == 200  # calculate works: ready, but degraded
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["ping"].startswith("unavailable: ") and FIX in body["checks"]["ping"]

    refused = _ping(server, tokens)
    assert refused.status_code == 503
    problem = refused.json()
    assert problem["type"] == "urn:pingcalc:problem:ping-unavailable"
    assert FIX in problem["detail"] and "iputils-ping" in problem["detail"]
    assert MISSING_BINARY not in problem["detail"]  # the log has the path, the client not
    calc = httpx.post(
        server.url + "/api/v1/calculate",
        json={"expression": "2*(3+4)"},
        headers=tokens.header("calc"),
        timeout=5,
    )
    assert calc.status_code == 200 and calc.json()["result"] == 14

    pid = server.process.pid
    PING_GROUP_RANGE.write_text(OPEN_RANGE)  # what the operator runs; the fixture restores it
    started = time.monotonic()
    while True:
        response = _ping(server, tokens)
        if response.status_code == 200 or time.monotonic() - started > RECOVERY_BUDGET_S:
            break
        time.sleep(0.2)
    waited = time.monotonic() - started
    assert response.status_code == 200, (waited, response.text)
    result = response.json()
    assert (result["backend"], result["received"]) == ("datagram", 1)
    assert server.process.pid == pid and server.process.poll() is None  # no restart

    assert httpx.get(server.url + "/readyz", timeout=5).json()["status"] == "ready"
    _ping(server, tokens)
    switches = [e for e in server.events() if e.get("event") == "ping_backend_changed"]
    assert len(switches) == 1
    assert (switches[0]["previous"], switches[0]["backend"]) == ("unavailable", "datagram")


def test_cli_on_a_host_without_ping_says_why_and_how_to_fix_it_before_anything_else(
    closed_host: None, tokens: Tokens, tmp_path: Path
) -> None:
    """`pingcalc ping` with no backend: no PING header, the reason and the fix, exit 1; the
    same command pings once the sysctl allows it."""
    env = process_env(PINGCALC_PING_BINARY=MISSING_BINARY)
    argv = [PINGCALC, "ping", "127.0.0.1", "--count", "1", "--backend", "auto"]
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""
    lines = refused.stderr.splitlines()
    assert lines[0].startswith("pingcalc: no ping backend is available: "), lines
    assert "ping_group_range" in lines[0] and FIX in lines[1], lines
    with ping_group_range(OPEN_RANGE):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PING 127.0.0.1 (IPv4): 1 echo requests")
