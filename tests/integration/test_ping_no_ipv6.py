"""Pinging ::1 where the host has no IPv6: a clear error, never a 200 with 100 % loss.

The "host" is a network namespace the test creates (`unshare -n`): loopback up, IPv6 disabled
on it (so not even ::1 exists, as in a container on a network without IPv6), and datagram
ICMP allowed there (the sysctl is per namespace; the real host's value is never touched).
The real server and both backends run inside it; pings go only to 127.0.0.1 and ::1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pingcalc.ping.selection import find_ping
from tests_support import PINGCALC, Tokens

NO_IPV6_NAMESPACE = (
    "ip link set lo up && sysctl -qw net.ipv6.conf.lo.disable_ipv6=1 "
    '&& echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range && exec "$0" "$@"'
)
# Runs inside the namespace: the real server over HTTP, then each backend directly.
INSIDE = r"""
import asyncio, json, os, socket, subprocess, sys, time
import httpx
from pingcalc.ping import DatagramBackend, Echoes, SubprocessBackend, PingError, parse_target

pingcalc, tokens_file, token, ping_path = sys.argv[1:5]
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
env = {k: v for k, v in os.environ.items() if not k.startswith("PINGCALC_")}
env |= {"PINGCALC_TOKENS_FILE": tokens_file, "PINGCALC_PORT": str(port)}
server = subprocess.Popen([pingcalc, "serve"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
url = f"http://127.0.0.1:{port}"
try:
    for _ in range(200):
        try:
            httpx.get(url + "/healthz", timeout=1); break
        except httpx.TransportError:
            time.sleep(0.05)
    for target in ("::1", "127.0.0.1"):
        r = httpx.post(url + "/api/v1/ping", json={"target": target, "count": 1},
                       headers={"Authorization": "Bearer " + token}, timeout=10)
        print(json.dumps({"via": "http", "target": target, "status": r.status_code,
                          "body": r.json()}))
finally:
    server.terminate(); server.wait(10)
backends = [DatagramBackend()] + ([SubprocessBackend(ping_path)] if ping_path else [])
for backend in backends:
    try:
        echoes = Echoes(count=1, timeout=1, interval=0.2, deadline=2)
        result = asyncio.run(backend.ping(parse_target("::1"), echoes))
        print(json.dumps({"via": backend.name, "result": result.to_dict()}))
    except PingError as exc:
        print(json.dumps({"via": backend.name, "error": type(exc).__name__, "text": str(exc)}))
"""


def _in_namespace_without_ipv6(*argv: str) -> subprocess.CompletedProcess[str]:
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("ip") is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2)")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace (needs root): {probe.stderr!r}")
    return subprocess.run(
        [unshare, "-n", "sh", "-c", NO_IPV6_NAMESPACE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ping_to_ipv6_on_a_host_without_ipv6_is_a_clear_error(
    tokens: Tokens, tmp_path: Path
) -> None:
    """::1 without IPv6: 503 "IPv6 is not available on this host" from the server and the same
    error from both backends; 127.0.0.1 still answers 200 (no false 100 % loss)."""
    ping_path = find_ping() or ""
    secret = tokens.secrets["pinger"]
    out = _in_namespace_without_ipv6(
        sys.executable, "-c", INSIDE, PINGCALC, str(tokens.path), secret, ping_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    http = {row["target"]: row for row in rows if row["via"] == "http"}
    assert http["::1"]["status"] == 503, http["::1"]
    detail = http["::1"]["body"]["detail"]
    assert detail.startswith("IPv6 is not available on this host") and "IPv4" in detail
    assert http["127.0.0.1"]["status"] == 200 and http["127.0.0.1"]["body"]["received"] == 1
    direct = {row["via"]: row for row in rows if row["via"] != "http"}
    expected = {"datagram", "subprocess"} if ping_path else {"datagram"}
    assert set(direct) == expected
    for row in direct.values():
        assert row.get("error") == "FamilyUnavailableError", row
        assert row["text"].startswith("IPv6 is not available on this host"), row
