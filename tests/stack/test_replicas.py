"""The replicas behind the edge: service, balancing, revocation, crashes and replacement.

Threats: T1499 denial of service through a lost replica (the edge retries elsewhere, CP-10),
T1078 valid accounts (a revoked token is refused by every replica within 2 s, IA-5/AC-2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from container_support import DOCKER, docker
from stack_support import CALC, METRICS, PING, Stack, markers_per_replica, unique

pytestmark = [pytest.mark.container, pytest.mark.stack]

# The steady load of the crash and replacement tests: 8 client addresses x 25/s = 200/s, 10 s.
LOAD_CLIENTS = 8
LOAD_RATE_EACH = 25
LOAD_SECONDS = 10
# The disruption happens this long after the load starts.
DISRUPT_AFTER = 3.0
# "A handful": requests a SIGKILLed replica may cost at most (its in-flight ones, unretried).
KILL_FAILURE_BUDGET = 5
REVOCATION_BOUND_S = 2.0

# Polls one replica from inside it until the token is refused; prints JSON lines.
POLL_UNTIL_REFUSED = """
import http.client, json, sys, time
token = sys.stdin.readline().strip()
conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=5)
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
seen_ok, deadline = False, time.time() + 30
while time.time() < deadline:
    conn.request("POST", "/api/v1/calculate", b'{"expression": "1+1"}', headers)
    response = conn.getresponse()
    response.read()
    now = time.time()
    if response.status == 200 and not seen_ok:
        seen_ok = True
        print(json.dumps({"ok": now}), flush=True)
    elif response.status == 401:
        print(json.dumps({"refused": now, "seen_ok": seen_ok}), flush=True)
        break
    elif response.status != 200:
        print(json.dumps({"other": response.status}), flush=True)
    time.sleep(0.1)
"""


def test_calculate_and_ping_work_through_the_edge(stack: Stack) -> None:
    """The full path works over TLS: calculate, and ping of 127.0.0.1 from inside a replica."""
    token = stack.token(unique("svc"))
    with stack.https(token=token) as client:
        calc = client.post(CALC, json={"expression": "2*(3+4)"})
        assert calc.status_code == 200, calc.text
        assert calc.json()["result"] == 14
        ping = client.post(PING, json={"target": "127.0.0.1", "count": 2})
        assert ping.status_code == 200, ping.text
        assert ping.json()["received"] == 2
        # Without a token, nothing but the 401 (the edge adds no way around authentication).
        with stack.https() as anonymous:
            assert anonymous.post(CALC, json={"expression": "1"}).status_code == 401


def test_requests_are_spread_over_all_replicas(stack: Stack) -> None:
    """Round-robin over every replica: no replica idles while another carries the load."""
    token = stack.token(unique("spread"))
    prefix, count = unique("spread"), 30
    since = time.time() - 1
    with stack.https(token=token) as client:
        for n in range(count):
            headers = {"X-Request-ID": f"{prefix}-{n}"}
            assert client.post(CALC, json={"expression": "1+1"}, headers=headers).status_code == 200
    time.sleep(0.5)
    seen = markers_per_replica(stack, prefix, since)
    assert len(seen) == 3
    assert sum(len(ids) for ids in seen.values()) == count
    assert all(len(ids) >= count // 3 - 2 for ids in seen.values()), seen
    METRICS["spread of 30 requests over the replicas"] = sorted(len(ids) for ids in seen.values())


def test_revoked_token_is_refused_by_every_replica_within_2_s(healthy_stack: Stack) -> None:
    """`make stack-revoke` reaches every replica without a restart (T1078, IA-5, AC-2)."""
    stack = healthy_stack
    name = unique("revoke")
    token = stack.token(name)
    pollers = [
        subprocess.Popen(
            [DOCKER, "exec", "-i", replica, "python", "-c", POLL_UNTIL_REFUSED],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for replica in stack.replicas()
    ]
    try:
        for poller in pollers:
            assert poller.stdin is not None and poller.stdout is not None
            poller.stdin.write(token + "\n")
            poller.stdin.close()
            first = json.loads(poller.stdout.readline())
            assert "ok" in first, first  # the token works on this replica before revocation
        started = time.time()
        revoked = stack.make("stack-revoke", NAME=name)
        done = time.time()
        assert revoked.returncode == 0, revoked.stderr
        refused_at = []
        for poller in pollers:
            assert poller.stdout is not None and poller.stderr is not None
            out = poller.stdout.read()  # until the poller exits (it gives up after 30 s)
            poller.wait(10)
            events = [json.loads(line) for line in out.splitlines()]
            assert events and "refused" in events[-1], (events, poller.stderr.read())
            assert not any("other" in e for e in events), events
            refused_at.append(events[-1]["refused"])
    finally:
        for poller in pollers:
            if poller.poll() is None:
                poller.kill()
    # The revocation's own instant: when the tokens file was replaced (its rename).
    replaced = (stack.state / "secrets" / "pingcalc" / "pingcalc_tokens").stat().st_mtime
    after_command = [round(t - done, 3) for t in refused_at]
    METRICS["revocation: refused by every replica, s after the tokens file was replaced"] = round(
        max(refused_at) - replaced, 3
    )
    METRICS["revocation: refused by every replica, s after make stack-revoke returned"] = max(
        after_command
    )
    METRICS["revocation: s after make stack-revoke started"] = round(max(refused_at) - started, 3)
    assert max(after_command) <= REVOCATION_BOUND_S, after_command
    assert max(refused_at) - replaced <= REVOCATION_BOUND_S
    # And through the edge: refused whichever replica answers.
    with stack.https(token=token) as client:
        assert all(client.post(CALC, json={"expression": "1"}).status_code == 401 for _ in range(6))


# --- load with a disruption -------------------------------------------------------------------


def _load(stack: Stack, token: str, prefix: str) -> tuple[list[Any], float]:
    """Start the steady load; returns the client runs and the epoch time it starts at."""
    start_at = time.time() + 3  # every container up and connected before the first request
    shape = ["--rate", str(LOAD_RATE_EACH), "--duration", str(LOAD_SECONDS), "--connections", "2"]
    runs = [
        stack.start_client(
            "load", *shape, "--prefix", f"{prefix}{i}", "--start-at", str(start_at), token=token
        )
        for i in range(LOAD_CLIENTS)
    ]
    return runs, start_at


def _summarise(runs: list[Any]) -> dict[str, Any]:
    results = [run.result(timeout=LOAD_SECONDS + 60) for run in runs]
    statuses: dict[str, int] = {}
    for result in results:
        for key, value in result["statuses"].items():
            statuses[key] = statuses.get(key, 0) + value
    total = sum(statuses.values())
    return {
        "total": total,
        "statuses": statuses,
        "failed": total - statuses.get("200", 0),
        "failures": [f for r in results for f in r["failures"]],
        "rate": round(total / max(r["elapsed"] for r in results), 1),
        "p95_max": max(r["latency_p95"] for r in results),
        "latency_max": max(r["latency_max"] for r in results),
    }


def _sigkill(stack: Stack, container: str) -> None:
    """A crash: SIGKILL to the replica's process from the host, so the engine restarts it as
    it would after any crash (`docker kill` counts as an operator's stop)."""
    pid = int(stack.inspect(container)["State"]["Pid"])
    try:
        os.kill(pid, signal.SIGKILL)
    except PermissionError:  # not root: the engine kills it, and we play the restart policy
        docker("kill", "--signal", "KILL", container)
        docker("start", container)


def _served_by(stack: Stack, container: str, token: str) -> bool:
    """Whether the edge routes requests to `container` again."""
    prefix, since = unique("back"), time.time() - 1
    with stack.https(token=token) as client:
        for n in range(9):
            client.post(CALC, json={"expression": "1"}, headers={"X-Request-ID": f"{prefix}-{n}"})
    time.sleep(0.3)
    return bool(markers_per_replica(stack, prefix, since).get(container))


def test_sigkill_of_a_replica_under_load_costs_at_most_a_handful_of_requests(
    healthy_stack: Stack,
) -> None:
    """A replica crashing at 200 requests/s: the edge retries its in-flight requests on the
    others, the engine restarts it, and the edge routes to it again (T1499; CP-10, SC-5)."""
    stack = healthy_stack
    token = stack.token(unique("killload"))
    victim = stack.replicas()[1]
    restarts = stack.inspect(victim)["RestartCount"]
    runs, start_at = _load(stack, token, unique("kill"))
    time.sleep(max(0.0, start_at + DISRUPT_AFTER - time.time()))
    killed_at = time.time()
    _sigkill(stack, victim)
    summary = _summarise(runs)
    METRICS["SIGKILL under load: failed requests"] = f"{summary['failed']} of {summary['total']}"
    METRICS["SIGKILL under load: achieved rate (req/s)"] = summary["rate"]
    METRICS["SIGKILL under load: worst latency (s)"] = summary["latency_max"]
    assert summary["rate"] >= 0.8 * LOAD_CLIENTS * LOAD_RATE_EACH, summary
    assert summary["failed"] <= KILL_FAILURE_BUDGET, summary
    # Recovery: restarted by the engine, healthy, and back in the edge's rotation.
    stack.wait_healthy(timeout=60)
    assert stack.inspect(victim)["RestartCount"] > restarts or os.geteuid() != 0
    deadline = time.time() + 30
    while not _served_by(stack, victim, token):
        assert time.time() < deadline, "the restarted replica never came back into rotation"
        time.sleep(1)
    METRICS["SIGKILL: back in rotation after (s)"] = round(time.time() - killed_at, 1)


def test_graceful_replacement_under_load_loses_no_request(healthy_stack: Stack) -> None:
    """Restarting a replica (SIGTERM, drain, start) at 200 requests/s loses nothing (CP-10)."""
    stack = healthy_stack
    token = stack.token(unique("restartload"))
    victim = stack.replicas()[0]
    runs, start_at = _load(stack, token, unique("restart"))
    time.sleep(max(0.0, start_at + DISRUPT_AFTER - time.time()))
    restarted = docker("restart", "--time", "15", victim, timeout=60)
    assert restarted.returncode == 0, restarted.stderr
    summary = _summarise(runs)
    METRICS["graceful restart under load: failed requests"] = (
        f"{summary['failed']} of {summary['total']}"
    )
    METRICS["graceful restart under load: worst latency (s)"] = summary["latency_max"]
    assert summary["rate"] >= 0.8 * LOAD_CLIENTS * LOAD_RATE_EACH, summary
    assert summary["failed"] == 0, summary
    stack.wait_healthy(timeout=60)
