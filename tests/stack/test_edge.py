"""The edge of the stack: TLS, what is published, and the connection-level shield.

Threats: T1557 adversary in the middle and T1040 sniffing (TLS 1.2+ only, NIST SC-8/SC-13),
T1190 exposure of internal services (only the edge is published, on 127.0.0.1), T1499.002
slowloris and T1499 connection floods (header deadline, per-client and total caps), T1036
spoofed client address (X-Forwarded-For set by the edge only).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import pytest

from container_support import free_port, run
from stack_support import CALC, HOSTNAME, METRICS, SNI, Stack, budget, ssl_context, unique

pytestmark = [pytest.mark.container, pytest.mark.stack]

OLD_VERSIONS = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1]
# A slow connection must be cut by the header deadline, give or take the time a loaded machine
# takes to schedule the close (without the deadline it would live the whole test).
SCHEDULING_SLACK_S = 3.0


def _address(stack: Stack) -> tuple[str, int]:
    parts = urlsplit(stack.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def _handshake(address: tuple[str, int], context: ssl.SSLContext, name: str) -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=10)
    try:
        return context.wrap_socket(raw, server_hostname=name)
    except BaseException:
        raw.close()
        raise


def _old_tls_client(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that really offers TLS 1.0/1.1: OpenSSL 3 refuses them at its default
    security level, which would make "refused" the client's doing, not the server's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        # Python deprecates these versions, which is the point: we must still offer them.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    return context


@pytest.fixture(scope="module")
def old_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`openssl s_server` speaking TLS 1.0 and 1.1 only, on a loopback port: the control."""
    work = tmp_path_factory.mktemp("oldtls")
    key, cert = work / "key.pem", work / "cert.pem"
    made = run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=old-tls-control"],
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-min_protocol", "TLSv1", "-max_protocol", "TLSv1.1",
         "-cipher", "DEFAULT:@SECLEVEL=0", "-www"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "openssl s_server did not start"
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(10)


# --- TLS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", HOSTNAME])
def test_tls_handshake_with_the_generated_ca_succeeds(stack: Stack, name: str) -> None:
    """The edge proves its identity with a certificate from the stack's CA for every name it
    serves (T1557 adversary in the middle; NIST SC-8, SC-23)."""
    with _handshake(_address(stack), ssl_context(stack.ca), name) as tls:
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        cert = tls.getpeercert()
        assert cert is not None
        # cast: ssl documents subjectAltName as ((kind, value), ...) pairs; typeshed gives
        # every field of a peer certificate one union type.
        pairs = cast(tuple[tuple[str, str], ...], cert["subjectAltName"])
        sans = {value for _, value in pairs}
        assert {"127.0.0.1", "localhost", HOSTNAME} <= sans
    # The same edge is not trusted without that CA: it is not a public certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(_address(stack), ssl.create_default_context(), name).close()


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=lambda v: v.name
)
def test_tls_1_2_and_1_3_are_both_served(stack: Stack, version: ssl.TLSVersion) -> None:
    """Clients limited to TLS 1.2 or to TLS 1.3 both connect (SC-8, SC-13)."""
    with _handshake(_address(stack), ssl_context(stack.ca, version), SNI) as tls:
        assert tls.version() == version.name.replace("_", ".")


@pytest.mark.parametrize("version", OLD_VERSIONS, ids=lambda v: v.name)
def test_tls_below_1_2_is_refused_by_the_edge(
    stack: Stack, old_tls_server: int, version: ssl.TLSVersion
) -> None:
    """TLS 1.0/1.1 downgrades are refused by the server (T1557.002 downgrade; NIST SC-8)."""
    client = _old_tls_client(version)
    # Control: this very client negotiates the old version with a server that allows it.
    with _handshake(("127.0.0.1", old_tls_server), client, "control") as tls:
        assert tls.version() == version.name.replace("_", ".")
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(_address(stack), client, SNI).close()
    assert "PROTOCOL_VERSION" in str(refused.value).upper() or "ALERT" in str(refused.value).upper()


def test_generated_keys_are_private_and_never_committed(stack: Stack) -> None:
    """Private keys are 0600 and outside git and every build context (T1552.004, IA-5)."""
    for key in (stack.state / "ca" / "ca.key", stack.state / "tls" / "server.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    default_state = Path("build/stack/ca/ca.key")
    ignored = run(["git", "-C", str(Path(__file__).resolve().parents[2]), "check-ignore", "-q",
                   str(default_state)])  # fmt: skip
    assert ignored.returncode == 0, "the default state directory must be git-ignored"
    out = stack.python_in(
        stack.replicas()[0], "import os; print(sorted(os.listdir('/run/secrets')))"
    )
    assert "key" not in out.stdout, "no TLS key reaches a replica"


# --- what is reachable -----------------------------------------------------------------------


def test_only_the_edge_is_published_and_only_on_loopback(stack: Stack) -> None:
    """Replicas and Redis have no published port; the edge only 127.0.0.1 (T1190, SC-7)."""
    published = {}
    for name in [*stack.replicas(), stack.edge, stack.redis]:
        ports = stack.inspect(name)["NetworkSettings"]["Ports"] or {}
        published[name] = [b for bindings in ports.values() if bindings for b in bindings]
    assert all(not published[name] for name in [*stack.replicas(), stack.redis])
    assert [b["HostIp"] for b in published[stack.edge]] == ["127.0.0.1"]
    networks = stack.inspect(stack.redis)["NetworkSettings"]["Networks"]
    assert list(networks) == [f"{stack.project}_backend"]


def test_the_replicas_cannot_be_reached_around_the_edge(stack: Stack) -> None:
    """The Docker host reaches every container address, internal networks included; a
    replica drops any peer but the edge (and its own health check), so no one skips the edge's
    TLS, timeouts and caps or gets a fresh budget per path (the stack's attack pass: 200 over
    plain HTTP on both networks; T1190, SC-7)."""
    token = stack.token(unique("around"))
    body = b'{"expression":"6*7"}'
    request = (
        b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 20\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n\r\n" + body
    )
    replica = stack.replicas()[0]
    for network in ("backend", "egress"):
        address = stack.address_on(replica, network)
        answer = b""
        with socket.create_connection((address, 8080), timeout=5) as raw:
            try:
                raw.sendall(request)
                while chunk := raw.recv(4096):
                    answer += chunk
            except OSError:
                pass
        assert answer == b"", (network, answer[:200])
    # The same request through the edge is served.
    with stack.https(token) as client:
        assert client.post(CALC, json={"expression": "6*7"}).json()["result"] == 42


def test_readiness_is_not_served_to_the_outside_and_tls_is_pinned_by_hsts(stack: Stack) -> None:
    """/readyz (a Redis round trip, and news of when limits are per replica) is the edge's
    own check, not the world's; /healthz still answers; every answer says HSTS (T1190)."""
    with stack.https() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 404
        # Percent-encoded, as the second attack pass sent it: the replicas decode the path.
        for encoded in ("/%72eadyz", "/ready%7a", "/%72%65%61%64%79%7A"):
            # Sent as written: httpx keeps percent escapes in a path as they are.
            answer = client.get(encoded)
            assert answer.status_code == 404, (encoded, answer.status_code, answer.text)
        health = client.get("/healthz")
        assert health.status_code == 200
        for answer in (ready, health):
            assert answer.headers["strict-transport-security"] == "max-age=31536000"
    # The edge still reads it itself: every replica is in rotation.
    assert stack.healthy()


def test_plain_http_does_not_reach_pingcalc(stack: Stack) -> None:
    """A cleartext request gets no HTTP answer and never reaches a replica (T1040, SC-8)."""
    marker = unique("plain")
    since = time.time() - 1
    with socket.create_connection(_address(stack), timeout=10) as raw:
        raw.sendall(f"GET /{marker} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"HTTP/" not in answer
    time.sleep(0.5)
    for name in [*stack.replicas(), stack.edge]:
        assert marker not in stack.logs(name, since=since)
    # The same request over TLS does reach a replica (404): the path was not the reason.
    with stack.https() as client:
        assert client.get(f"/{marker}").status_code == 404


def test_oversized_request_head_is_refused_at_the_edge(stack: Stack) -> None:
    """A 32 KiB header is answered 400 by the edge, never buffered by a replica (T1499)."""
    big, small = unique("bighead"), unique("smallhead")
    since = time.time() - 1
    with stack.https() as client:
        response = client.get("/healthz", headers={"X-Big": "a" * 32 * 1024, "X-Request-ID": big})
        assert response.status_code == 400
        assert "x-request-id" not in response.headers  # answered by the edge, not pingcalc
        fits = client.get("/healthz", headers={"X-Pad": "a" * 4096, "X-Request-ID": small})
        assert fits.status_code == 200
    time.sleep(0.5)
    logs = "".join(stack.logs(name, since=since) for name in stack.replicas())
    assert small in logs and big not in logs


# --- the client address ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["--spoof", "--spoof-trailer"])
def test_client_cannot_spoof_its_address_with_x_forwarded_for(stack: Stack, where: str) -> None:
    """Forged X-Forwarded-For / Forwarded / X-Real-IP, in the head or in a chunked body's
    trailer (which the edge passes through: the stack's attack pass got 60 guesses from 60
    "addresses"), neither change the address the replicas log nor give fresh budgets: exactly
    the per-address failure budget passes (T1036, AC-7)."""
    allowed = budget("PINGCALC_AUTH_FAILURES_PER_IP")
    prefix = unique("spoof")
    since = time.time() - 1
    # Bad tokens, each request claiming another address: a believed header = a fresh budget.
    client = stack.start_client(
        "burst", "--count", str(allowed + 15), "--connections", "3", where,
        "--prefix", prefix, token="pc_" + "x" * 43,
    )  # fmt: skip
    statuses = client.result()["statuses"]
    assert statuses.get("401") == allowed, statuses
    assert statuses.get("429") == 15, statuses
    # What the replicas recorded as the client: the container's real address, never a fake.
    lines = [
        json.loads(line)
        for name in stack.replicas()
        for line in stack.logs(name, since=since).splitlines()
        if f'"{prefix}-' in line and '"event":"access"' in line
    ]
    assert len(lines) == allowed + 15
    assert {line["client_ip"] for line in lines} == {client.address}


# --- connection-level shield -----------------------------------------------------------------


def _edge_setting(stack: Stack, name: str) -> str:
    env: dict[str, str] = dict(e.split("=", 1) for e in stack.inspect(stack.edge)["Config"]["Env"])
    return env[name]


def _seconds(value: str) -> float:
    return float(value[:-1]) if value.endswith("s") else float(value) / 1000


def test_300_slow_connections_do_not_stop_a_new_client(healthy_stack: Stack) -> None:
    """Slowloris from several addresses: every slow connection is cut at the header deadline,
    a client over its connection cap is refused at accept, and a new client is served at once
    (T1499.002; NIST SC-5, SC-10)."""
    stack = healthy_stack
    deadline = _seconds(_edge_setting(stack, "EDGE_HEADER_TIMEOUT"))
    per_client = int(_edge_setting(stack, "EDGE_MAX_CONNECTIONS_PER_CLIENT"))
    duration = str(deadline + 8)
    slow_clients = [
        stack.start_client("slow", "--connections", "60", "--interval", "1", "--duration", duration)
        for _ in range(4)
    ]
    # One client tries more connections than it may hold at once.
    greedy = stack.start_client(
        "slow", "--connections", str(per_client + 10), "--interval", "1", "--duration", duration
    )
    # Every slow connection attempted (and the established ones trickling their heads) first.
    ready = [c.first_line()["ready"] for c in [*slow_clients, greedy]]
    with stack.https(token=stack.first_token) as client:
        asked = time.time()
        response = client.post(CALC, json={"expression": "1+1"})
        answered = time.time()
    assert response.status_code == 200
    results = [c.result() for c in slow_clients]
    greedy_result = greedy.result()

    open_at_request = 0
    for result in [*results, greedy_result]:
        for conn in result["connections"]:
            if not conn["established"]:
                continue
            opened = result["started"] + conn["opened"]
            # Cut by the edge within the header deadline (+ scheduling slack), with a 408.
            assert conn["held"] is not None, "a slow connection outlived the test"
            assert conn["held"] <= deadline + SCHEDULING_SLACK_S, conn
            assert conn["answer"].startswith("HTTP/1.1 408") or conn["answer"] == "", conn
            if opened <= asked and opened + conn["held"] >= answered:
                open_at_request += 1
    established = [sum(c["established"] for c in r["connections"]) for r in results]
    greedy_established = sum(c["established"] for c in greedy_result["connections"])
    assert established == [60] * 4 and ready[:4] == [60] * 4
    assert greedy_established == ready[4] == per_client
    assert open_at_request >= 300, open_at_request
    METRICS["slow connections open while a new client was served"] = open_at_request
    METRICS["new client's answer during the slowloris (s)"] = round(answered - asked, 3)
    held = [c["held"] for r in results for c in r["connections"] if c["established"]]
    METRICS["slow connection lifetime max (s)"] = max(held)
