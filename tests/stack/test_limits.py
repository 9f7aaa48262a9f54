"""Limits shared by the replicas through Redis, and Redis itself.

Threats: T1499 denial of service and T1110 brute force (a client gets its budget once, not once
per replica; NIST SC-5, AC-7), availability of the limiter (a Redis outage degrades to
per-process limits, never to none), T1078/T1565.001 on Redis (no access without the password,
least privilege with it).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from container_support import docker
from stack_support import (
    METRICS,
    Stack,
    budget,
    markers_per_replica,
    refill,
    unique,
)

pytestmark = [pytest.mark.container, pytest.mark.stack]

PER_IP = "PINGCALC_RATE_LIMIT_PER_IP"
AUTH_FAILURES = "PINGCALC_AUTH_FAILURES_PER_IP"
BAD_TOKEN = "pc_" + "b" * 43


def test_per_client_limit_holds_exactly_across_replicas(stack: Stack) -> None:
    """Requests over the budget, spread over every replica: exactly the budget passes, not
    three times it (T1499, SC-5)."""
    allowed, extra = budget(PER_IP), 30
    token = stack.token(unique("exact"))
    prefix, since = unique("exact"), time.time() - 1
    result = stack.client(
        "burst", "--count", str(allowed + extra), "--connections", "6", "--prefix", prefix,
        token=token,
    )  # fmt: skip
    passed = result["statuses"].get("200", 0)
    METRICS["per-client budget across 3 replicas: passed / budget / sent"] = (
        f"{passed} / {allowed} / {allowed + extra}"
    )
    assert allowed <= passed <= allowed + refill(PER_IP, result["elapsed"]), result["statuses"]
    assert result["statuses"].get("429", 0) == allowed + extra - passed, result["statuses"]
    # The requests really were spread: every replica counted part of the one budget.
    seen = markers_per_replica(stack, prefix, since)
    METRICS["per-client budget: requests seen per replica"] = sorted(len(s) for s in seen.values())
    assert len(seen) == 3 and all(len(ids) >= allowed // 6 for ids in seen.values()), seen


def test_abusive_client_does_not_affect_another(stack: Stack) -> None:
    """A client flooding past its budget is refused (and held at the replicas' edge) while
    another client, at the same time, is served as before (T1499; SC-5, SC-6)."""
    allowed = budget(PER_IP)
    calm_token, abuser_token = stack.token(unique("calm")), stack.token(unique("abuser"))
    calm = stack.start_client(
        "load", "--rate", "10", "--duration", "3", "--connections", "1", token=calm_token
    )
    baseline = calm.result()
    assert baseline["statuses"] == {"200": 30}, baseline
    abuser = stack.start_client(
        "burst", "--count", str(allowed + 60), "--connections", "12", token=abuser_token
    )
    calm = stack.start_client(
        "load", "--rate", "10", "--duration", "8", "--connections", "1", token=calm_token,
        address=calm.address,
    )  # fmt: skip
    during, flood = calm.result(), abuser.result()
    METRICS["abusive client: its 200s / 429s"] = (
        f"{flood['statuses'].get('200', 0)} / {flood['statuses'].get('429', 0)}"
    )
    METRICS["other client p95 latency before / during the flood (s)"] = (
        f"{baseline['latency_p95']} / {during['latency_p95']}"
    )
    assert flood["statuses"].get("200", 0) <= allowed + refill(PER_IP, flood["elapsed"])
    assert flood["statuses"].get("429", 0) >= 60 - refill(PER_IP, flood["elapsed"])
    assert during["statuses"] == {"200": 80}, during
    assert during["latency_p95"] < 2.0, during


def _failures_passed(stack: Stack) -> int:
    """Bad-token requests from a fresh address, three at a time, until refused: how many got
    their 401 (concurrent requests on several replicas must not slip past the count)."""
    allowed = budget(AUTH_FAILURES)
    result = stack.client(
        "burst", "--count", str(3 * allowed + 15), "--connections", "3", token=BAD_TOKEN
    )
    assert set(result["statuses"]) <= {"401", "429"}, result["statuses"]
    return int(result["statuses"].get("401", 0))


def _all_readyz(stack: Stack) -> list[tuple[int, dict[str, object]]]:
    return [stack.readyz(name) for name in stack.replicas()]


def test_redis_outage_degrades_to_per_process_limits_and_recovers(healthy_stack: Stack) -> None:
    """Redis stopped: every replica says so on /readyz (200, degraded) and still limits, per
    process; Redis back: one shared budget again (T1499 availability of the limiter, SC-5)."""
    stack = healthy_stack
    allowed = budget(AUTH_FAILURES)
    assert _failures_passed(stack) == allowed  # shared: one budget for the three replicas
    stopped = docker("stop", stack.redis)
    try:
        deadline = time.time() + 20
        while not all(
            code == 200 and body.get("status") == "degraded" for code, body in _all_readyz(stack)
        ):
            assert time.time() < deadline, _all_readyz(stack)
            time.sleep(0.5)
        for _code, body in _all_readyz(stack):
            checks = body["checks"]
            assert isinstance(checks, dict) and checks["rate_limit_storage"] != "ok", body
        # Each replica limits on its own: three budgets, never an unlimited one.
        degraded = _failures_passed(stack)
        METRICS["auth-failure budget with Redis stopped (3 replicas)"] = f"{degraded} of {allowed}"
        assert degraded == 3 * allowed
    finally:
        started = docker("start", stack.redis)
        assert stopped.returncode == 0 and started.returncode == 0, (stopped, started)
    restarted_at = time.time()
    stack.wait_healthy(timeout=60)
    for code, body in _all_readyz(stack):
        assert code == 200 and body["status"] == "ready", body
    # Sharing is back once each replica has retried Redis (every couple of seconds).
    deadline = time.time() + 20
    while (shared := _failures_passed(stack)) != allowed:
        assert time.time() < deadline, f"still {shared} failures allowed after Redis came back"
    METRICS["shared limits restored after Redis restart (s)"] = round(time.time() - restarted_at, 1)


REDIS_PROBE = """
import json, sys, urllib.parse, redis
uri = open("/run/secrets/pingcalc_rate_limit_storage").read().strip()
parts = urllib.parse.urlsplit(uri)
def attempt(**kw):
    try:
        return str(redis.Redis(unix_socket_path=parts.path, socket_timeout=2, **kw).ping())
    except Exception as exc:
        return type(exc).__name__ + ": " + str(exc)
legit = redis.Redis.from_url(uri)
def command(*args):
    try:
        legit.execute_command(*args)
        return "allowed"
    except Exception as exc:
        return type(exc).__name__
print(json.dumps({
    "no_password": attempt(),
    "default_user_guess": attempt(username="default", password="redis"),
    "app_user_wrong_password": attempt(username=parts.username, password="x" * 64),
    "probe_user_without_its_password": attempt(username="probe", password=parts.password),
    "legit": str(legit.ping()),
    "flushall": command("FLUSHALL"),
    "config_set": command("CONFIG", "SET", "appendonly", "yes"),
    "keys": command("KEYS", "*"),
    "other_key": command("SET", "not-pingcalc", "1"),
    "delete": command("DEL", "pingcalc:gcra:x"),
    "own_key": command("GET", "pingcalc:gcra:x"),
    "password": parts.password,
}))
"""


def test_redis_has_no_network_listener_and_only_the_replicas_reach_its_socket(
    stack: Stack,
) -> None:
    """The Docker host reaches every container address, internal networks included: a Redis on
    TCP let any local user hold hundreds of unauthenticated connections until it ran out of
    memory and every shared limit was reset (the stack's second attack pass). Nothing listens
    on its address now, its socket refuses ids outside the replicas' group, and the replicas
    still share limits through it (T1499, SC-7, AC-3)."""
    address = stack.address_on(stack.redis, "backend")
    for port in (6379, 6380, 16379):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=5).close()
    outsider = docker(
        "exec", "-u", "12345:12345", stack.redis,
        "redis-cli", "-s", "/run/redis/redis.sock", "ping",
    )  # fmt: skip
    assert "PONG" not in outsider.stdout
    assert "Permission denied" in outsider.stdout + outsider.stderr
    # The legitimate path: one failure budget shared by every replica, through the socket.
    assert _failures_passed(stack) == budget(AUTH_FAILURES)


# From a replica, with the app's password (what code execution in a replica would have): many
# connections, each half-way through a 1 MB argument, held open. Prints the clients still
# connected at the end, and whether a fresh connection still answers.
REDIS_BUFFER_FLOOD = """
import socket, sys, time, urllib.parse, redis
uri = open("/run/secrets/pingcalc_rate_limit_storage").read().strip()
parts = urllib.parse.urlsplit(uri)
def command(*args):
    return b"*%d\\r\\n" % len(args) + b"".join(b"$%d\\r\\n%s\\r\\n" % (len(a), a) for a in args)
head = b"*3\\r\\n$3\\r\\nSET\\r\\n$12\\r\\npingcalc:big\\r\\n$1000000\\r\\n"
held, cut = [], 0
for n in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(parts.path)
        s.sendall(command(b"AUTH", parts.username.encode(), parts.password.encode()))
        s.sendall(head + b"x" * 999000)
        held.append(s)
    except OSError:
        cut += 1
        s.close()
time.sleep(2)
alive = 0
for s in held:
    try:
        s.sendall(b"x")
        alive += 1
    except OSError:
        pass
print(cut + len(held) - alive, redis.Redis.from_url(uri).ping())
"""


def test_many_half_sent_arguments_cannot_push_redis_out_of_memory(stack: Stack) -> None:
    """maxmemory does not count clients' buffers: 129 connections each holding a half-sent
    1 MB argument got Redis OOM-killed and every shared limit reset (third attack pass, with
    the app's password). Redis now disconnects the biggest buffers past 16 MB in all: it stays
    up, and the replicas keep sharing their limits (T1499, SC-5)."""
    before = stack.inspect(stack.redis)["State"]
    out = stack.python_in(stack.replicas()[0], REDIS_BUFFER_FLOOD, "140", timeout=120)
    assert out.returncode == 0, out.stderr
    disconnected, answered = out.stdout.split()
    assert answered == "True"
    assert int(disconnected) >= 100, out.stdout  # 140 MB asked for, 16 MB allowed
    after = stack.inspect(stack.redis)["State"]
    assert after["OOMKilled"] is False and after["StartedAt"] == before["StartedAt"]
    METRICS["half-sent 1 MB arguments: connections Redis cut of 140"] = int(disconnected)
    assert _failures_passed(stack) == budget(AUTH_FAILURES)


def test_redis_refuses_connections_without_the_password(stack: Stack) -> None:
    """Through the replicas' socket: no password, a guessed one or another user's
    gets nothing; the real one works but cannot run admin commands; the password is in no
    image, environment or argument list (T1078, T1565.001, T1552.001; IA-2, AC-6)."""
    out = stack.python_in(stack.replicas()[0], REDIS_PROBE)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result.pop("legit") == "True"
    password = result.pop("password")
    for case in ("no_password", "default_user_guess", "app_user_wrong_password",
                 "probe_user_without_its_password"):  # fmt: skip
        assert result[case].startswith("AuthenticationError"), (case, result[case])
    assert result["flushall"] == result["config_set"] == result["keys"] == "NoPermissionError"
    # Least privilege: its own keys only, and only the commands the limiters use.
    assert result["other_key"] == result["delete"] == "NoPermissionError"
    assert result["own_key"] == "allowed"
    assert len(password) >= 32
    for name in [stack.redis, *stack.replicas()]:
        info = stack.inspect(name)
        assert password not in json.dumps(info["Config"]), name
        assert password not in json.dumps(stack.inspect(info["Image"])["Config"]), name
        pid = info["State"]["Pid"]
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            assert password.encode() not in cmdline.read(), name
