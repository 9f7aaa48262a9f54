"""The service does its job under every control: ping and calculate in the hardened container."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from container_support import Stack, docker

pytestmark = pytest.mark.container

# The same request made from inside the container, to its own 127.0.0.1, with the image's
# Python: proves the service and in-process ping work with an empty capability set.
INSIDE_REQUEST = """
import json, sys, urllib.request
path, token, body = sys.argv[1], sys.argv[2], sys.argv[3]
request = urllib.request.Request(
    "http://127.0.0.1:8080" + path, data=body.encode(), method="POST",
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
)
with urllib.request.urlopen(request, timeout=10) as response:
    print(json.dumps({"status": response.status, "body": json.load(response)}))
"""


def _inside(stack: Stack, path: str, token: str, body: Mapping[str, object]) -> dict[str, object]:
    out = stack.docker_exec_python(INSIDE_REQUEST, path, stack.tokens[token], json.dumps(body))
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_ping_loopback_works_without_capabilities(stack: Stack) -> None:
    """T1611: in-process ping needs no CAP_NET_RAW (ping_group_range), from outside and inside."""
    assert int(stack.proc_status()["CapEff"], 16) == 0
    body = {"target": "127.0.0.1", "count": 2}
    with stack.client("pinger") as client:
        response = client.post("/api/v1/ping", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 2 and response.json()["backend"] == "datagram"
    inside = _inside(stack, "/api/v1/ping", "pinger", body)
    assert inside["status"] == 200
    assert isinstance(inside["body"], dict) and inside["body"]["received"] == 2


def test_ping_scope_is_enforced_in_the_container(stack: Stack) -> None:
    """T1078: a calculate-only token cannot ping; the pinger token can (checked above)."""
    with stack.client("calc") as client:
        response = client.post("/api/v1/ping", json={"target": "127.0.0.1", "count": 1})
    assert response.status_code == 403


def test_calculate_works_in_the_container(stack: Stack) -> None:
    """T1059: calculate answers under the hardened runtime, from outside and inside."""
    a, b, c = 1234, 5678, 91
    body = {"expression": f"{a} * {b} + {c}"}
    with stack.client("calc") as client:
        response = client.post("/api/v1/calculate", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == a * b + c
    inside = _inside(stack, "/api/v1/calculate", "calc", body)
    assert inside["status"] == 200
    assert isinstance(inside["body"], dict) and inside["body"]["result"] == a * b + c


def test_self_check_passes_inside_the_hardened_container(stack: Stack) -> None:
    """`pingcalc check` run as the image's user finds nothing to fail: uid 10001, a 0600 tokens
    secret, limits on, the in-process ping backend (NIST CM-6; the root case fails on the host:
    tests/unit/test_check.py)."""
    out = docker("exec", stack.container, "pingcalc", "check")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("PASS  user") and "uid 10001" in line for line in lines)
    assert any(line.startswith("PASS  bind") and "inside a container" in line for line in lines)
    assert any(line.startswith("INFO  ping-backend") and "datagram" in line for line in lines)
    assert lines[-1].startswith("0 failed")
