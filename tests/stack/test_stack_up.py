"""`make stack-up` and friends as an operator or a script uses them, and the containers they start.

Threats: T1611 escape to host and T1610 tooling (every container as hardened as the single
one: non-root, no capability, read-only, bounded), T1552 secrets at rest (owners and modes).
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from stack_support import SNI, Stack, ssl_context, unique

pytestmark = [pytest.mark.container, pytest.mark.stack]

APP_UID, EDGE_UID, REDIS_UID = 10001, 10002, 10003


def test_stack_up_prints_exactly_the_url_and_the_ca(stack: Stack) -> None:
    """A script reads two lines, nothing else: builds and progress went to stderr."""
    lines = stack.up_stdout.splitlines()
    assert len(lines) == 2, stack.up_stdout
    port = stack.env["STACK_PORT"]
    assert lines[0] == f"URL=https://127.0.0.1:{port}"
    assert re.fullmatch(r"CA=/.+\.crt", lines[1])
    assert Path(lines[1][3:]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    # The first token was shown once (stderr) and works: the stack was usable at once.
    assert stack.first_token.startswith("pc_")
    with stack.https(token=stack.first_token) as client:
        assert client.post("/api/v1/calculate", json={"expression": "1+2"}).json()["result"] == 3


def test_stack_up_again_is_idempotent_and_keeps_ca_and_tokens(stack: Stack) -> None:
    """A second `make stack-up` (the warm path) changes nothing an operator relies on."""
    ca_before = stack.ca.read_bytes()
    tokens = stack.state / "secrets" / "pingcalc" / "pingcalc_tokens"
    tokens_before = tokens.read_bytes()
    again = stack.make("stack-up", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout == stack.up_stdout
    assert stack.ca.read_bytes() == ca_before
    assert tokens.read_bytes() == tokens_before
    assert "first token" not in again.stderr
    stack.wait_healthy()


@pytest.mark.parametrize(
    ("table", "line", "named"),
    [
        pytest.param(
            "/etc/passwd",
            f"pcuidtest:x:{EDGE_UID}:{EDGE_UID}::/nonexistent:/usr/sbin/nologin\n",
            f"host account pcuidtest has uid {EDGE_UID}",
            id="account",
        ),
        pytest.param(
            "/etc/subuid",
            f"pcuidtest:{APP_UID - 1}:8\n",
            f"/etc/subuid gives pcuidtest the subordinate ids {APP_UID - 1}-{APP_UID + 6}",
            id="subordinate-ids",
        ),
    ],
)
def test_stack_up_refuses_while_a_host_account_shares_a_container_uid(
    stack: Stack, table: str, line: str, named: str
) -> None:
    """A host account with a container's uid, or with it among its subordinate ids (a user
    namespace of its own can run as it), could read its secrets through /proc/PID/root (the
    attack passes read the edge's TLS key as uid 998, and Redis's password as a bare 10001):
    `make stack-up` names it and stops before changing anything, and the running stack keeps
    serving (T1552.001)."""
    path = Path(table)
    original = path.read_bytes() if path.exists() else None
    try:
        path.write_bytes((original or b"") + line.encode())
        refused = stack.make("stack-up", timeout=120)
    finally:
        if original is None:
            path.unlink()
        else:
            path.write_bytes(original)
    assert refused.returncode != 0 and refused.stdout == ""
    assert named in refused.stderr
    assert "STACK_ALLOW_SHARED_UIDS=1" in refused.stderr
    with stack.https(token=stack.first_token) as client:
        assert client.post("/api/v1/calculate", json={"expression": "1+2"}).json()["result"] == 3


def run(argv: list[str], input_bytes: bytes) -> str:
    done = subprocess.run(argv, input=input_bytes, capture_output=True, check=True, timeout=30)
    return done.stdout.decode()


def _served_serial(stack: Stack) -> int:
    address = ("127.0.0.1", int(stack.env["STACK_PORT"]))
    with (
        socket.create_connection(address, timeout=10) as raw,
        ssl_context(stack.ca).wrap_socket(raw, server_hostname=SNI) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    out = run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input_bytes=der)
    return int(out.split("=", 1)[1], 16)


def test_renewed_certificate_is_served_without_restarting_the_edge(stack: Stack) -> None:
    """A re-issued certificate (expiry, new names) reaches the running edge with a reload, not
    a restart: open connections are not cut (SC-12, SC-17)."""
    before_serial = _served_serial(stack)
    edge_started = stack.inspect(stack.edge)["State"]["StartedAt"]
    (stack.state / "tls" / "server.crt").unlink()  # as if it were due for renewal
    again = stack.make("stack-up", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    deadline = time.time() + 20
    while (serial := _served_serial(stack)) == before_serial:
        assert time.time() < deadline, "the edge still serves the old certificate"
        time.sleep(0.5)
    assert serial != before_serial
    assert stack.inspect(stack.edge)["State"]["StartedAt"] == edge_started
    stack.wait_healthy()


def test_secret_files_belong_to_their_service_only(stack: Stack) -> None:
    """Each secret is 0600 and owned by the one service that reads it (IA-5, AC-6)."""
    secrets = stack.state / "secrets"
    assert secrets.stat().st_mode & 0o077 == 0
    expected = {
        "pingcalc/pingcalc_tokens": APP_UID,
        "pingcalc/pingcalc_rate_limit_storage": APP_UID,
        "redis/users.acl": REDIS_UID,
        "redis/probe.password": REDIS_UID,
        "edge/server.pem": EDGE_UID,
    }
    for name, uid in expected.items():
        info = (secrets / name).stat()
        assert (info.st_uid, info.st_mode & 0o777) == (uid, 0o600), name
    # The ACL file holds password hashes, never a password.
    acl = (secrets / "redis" / "users.acl").read_text()
    password = (secrets / "pingcalc" / "pingcalc_rate_limit_storage").read_text().split(":")[2]
    assert password.split("@")[0] not in acl
    assert "user default off" in acl


def test_stack_token_prints_only_the_token_and_keeps_the_file_owner(stack: Stack) -> None:
    """`make stack-token` writes one line (the secret) and the tokens file stays the app's."""
    tokens = stack.state / "secrets" / "pingcalc" / "pingcalc_tokens"
    token = stack.token(unique("owner"))
    assert token.startswith("pc_")
    info = tokens.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (APP_UID, 0o600)
    assert token not in tokens.read_text()  # only its hash is stored


def _proc_status(stack: Stack, name: str) -> dict[str, str]:
    pid = stack.inspect(name)["State"]["Pid"]
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_every_container_is_hardened_like_the_single_one(stack: Stack) -> None:
    """Non-root, no capability, no privilege gain, read-only root, bounded memory and pids
    (T1611, T1610, T1499; AC-6, SC-5)."""
    expected_uid = {stack.edge: EDGE_UID, stack.redis: REDIS_UID}
    for name in [*stack.replicas(), stack.edge, stack.redis]:
        host = stack.inspect(name)["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], name
        assert host["ReadonlyRootfs"] is True, name
        assert "no-new-privileges:true" in host["SecurityOpt"], name
        assert host["Memory"] > 0 and host["Memory"] == host["MemorySwap"], name
        assert host["PidsLimit"] and host["PidsLimit"] > 0, name
        assert not host["Privileged"], name
        status = _proc_status(stack, name)
        uid = expected_uid.get(name, APP_UID)
        assert status["Uid"].split()[:2] == [str(uid), str(uid)], name
        assert int(status["CapEff"], 16) == 0, name
        assert status["NoNewPrivs"].strip() == "1", name
    for name in stack.replicas():
        host = stack.inspect(name)["HostConfig"]
        assert host["Sysctls"] == {"net.ipv4.ping_group_range": "10001 10001"}
        mounts = {m["Destination"]: m for m in stack.inspect(name)["Mounts"]}
        assert mounts["/run/secrets"]["RW"] is False  # replicas cannot change the tokens
