"""When the audit file cannot be written: fail closed (503, not ready) or, if chosen, open.

Threat: audit evasion (NIST AU-5, response to audit processing failures): an attacker who
fills the disk, or a read-only volume, must not make audited actions run unrecorded. With
`closed` (the default) ping and calculate answer 503 and /readyz says not ready; the failure
and every event still reach stdout; the file resumes, chain intact, once it is writable.

How "cannot be written" is made real although tests run as root (root ignores permission
bits, so a 0500 directory would not stop it):
- in process: the audit path's parent is a regular file, so every open fails (ENOTDIR);
- in a real server: the audit directory is a tmpfs in the server's own mount namespace
  (`unshare --mount`), mounted read-only (EROFS, what a read-only volume gives) or filled up
  (ENOSPC, a full disk), then remounted writable or emptied with `nsenter`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ping_fakes import RecordingBackend, services_with
from pingcalc.api.edge import Edge
from pingcalc.app import create_app
from pingcalc.audit import verify
from pingcalc.settings import Settings
from tests_support import (
    PINGCALC,
    AuditKeys,
    LiveServer,
    Tokens,
    audit_records,
    file_records,
    free_port,
    process_env,
)

PING = {"target": "127.0.0.1", "count": 1}


def assert_audit_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["type"] == "urn:pingcalc:problem:audit-unavailable"
    assert "audit trail cannot be written" in body["detail"]


def assert_chain_recovered(path: Path, keys: AuditKeys) -> None:
    """The audit file at `path` starts a chain, records the gap it missed, ends with the ping
    that followed the recovery, and verifies."""
    records = file_records(path)
    assert records[0]["event"] == "audit_chain_started"
    assert records[1]["event"] == "audit_file_recovered" and records[1]["missed"] >= 2
    assert records[-1]["event"] == "ping"
    result = verify([path], keys.verify)
    assert result.ok, result.describe()


# --- in process: a path that cannot be opened ---------------------------------------------


@pytest.fixture
def blocked(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    audit_keys: AuditKeys,
    open_client: Callable[[Edge], TestClient],
) -> Callable[..., Any]:
    """An app whose audit file's parent is a regular file (ENOTDIR for every open)."""
    blocker = tmp_path / "audit"
    blocker.write_text("a file where the audit directory should be\n")

    def build(policy: str) -> tuple[TestClient, RecordingBackend, Path]:
        settings = make_settings(
            **audit_keys.settings(blocker / "audit.jsonl"), audit_on_failure=policy
        )
        backend = RecordingBackend()
        client = open_client(create_app(settings, services=services_with(settings, backend)))
        return client, backend, blocker

    return build


def test_fail_closed_answers_503_and_is_not_ready(
    blocked: Callable[..., Any], tokens: Tokens, capsys: pytest.CaptureFixture[str]
) -> None:
    """Closed: ping is refused with a 503 problem, /readyz is 503, stdout keeps every event."""
    client, backend, _ = blocked("closed")
    response = client.post("/api/v1/ping", json=PING, headers=tokens.header("pinger"))
    assert_audit_unavailable(response)
    assert backend.calls == []  # nothing was done that could not be recorded
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    assert "fail-closed" in ready.json()["checks"]["audit"]
    # Health and authentication still work; only audited actions are refused.
    assert client.get("/healthz").status_code == 200
    records = audit_records(capsys.readouterr().out)
    events = [r["event"] for r in records]
    assert "audit_file_failed" in events and "server_start" in events
    rejected = next(r for r in records if r["event"] == "ping_rejected")
    assert (rejected["reason"], rejected["token"], rejected["request_id"]) == (
        "audit_unavailable",
        "pinger",
        response.headers["x-request-id"],
    )
    assert rejected["audit_file"] == "failed"


def test_fail_closed_recovers_when_the_file_is_writable_again(
    blocked: Callable[..., Any], tokens: Tokens, audit_keys: AuditKeys
) -> None:
    """Once the directory exists, readiness returns, pings run, and the gap is recorded."""
    client, backend, blocker = blocked("closed")
    assert (
        client.post("/api/v1/ping", json=PING, headers=tokens.header("pinger")).status_code == 503
    )
    blocker.unlink()
    blocker.mkdir()
    assert client.get("/readyz").status_code == 200
    response = client.post("/api/v1/ping", json=PING, headers=tokens.header("pinger"))
    assert response.status_code == 200 and len(backend.calls) == 1
    assert_chain_recovered(blocker / "audit.jsonl", audit_keys)


def test_fail_open_serves_and_reports_degraded(
    blocked: Callable[..., Any], tokens: Tokens, capsys: pytest.CaptureFixture[str]
) -> None:
    """Open: requests proceed (recorded on stdout only) and /readyz is 200 but degraded."""
    client, backend, _ = blocked("open")
    response = client.post("/api/v1/ping", json=PING, headers=tokens.header("pinger"))
    assert response.status_code == 200 and len(backend.calls) == 1
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert "fail-open" in ready.json()["checks"]["audit"]
    ping = next(r for r in audit_records(capsys.readouterr().out) if r["event"] == "ping")
    assert ping["audit_file"] == "failed" and ping["token"] == "pinger"


# --- a real server on a read-only or full filesystem ---------------------------------------


def start_in_mount_namespace(
    tokens: Tokens, keys: AuditKeys, tmp_path: Path, audit_dir: Path, mount_options: str
) -> LiveServer:
    """`pingcalc serve` in its own mount namespace, with a tmpfs at `audit_dir`."""
    audit_dir.mkdir()
    port = free_port()
    env = process_env()
    env.update(
        PINGCALC_TOKENS_FILE=str(tokens.path),
        PINGCALC_PORT=str(port),
        **keys.env(audit_dir / "audit.jsonl"),
    )
    log_path = tmp_path / "server.log"
    script = 'mount -t tmpfs -o "$1" pingcalc-audit "$2" && exec "$3" serve'
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    process = subprocess.Popen(
        [*argv, mount_options, str(audit_dir), PINGCALC],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = LiveServer(process, f"http://127.0.0.1:{port}", log_path, tokens)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, server.log_text()
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.stop()
    raise AssertionError(f"server did not start: {server.log_text()}")


@dataclass
class NamespacedServer:
    """A real server whose audit directory is a tmpfs in its own mount namespace, and the key
    it seals the audit file with."""

    server: LiveServer
    audit_dir: Path
    keys: AuditKeys

    def run(self, *command: str) -> None:
        """Run `command` inside the server's mount namespace."""
        pid = str(self.server.process.pid)
        subprocess.run(["nsenter", "-t", pid, "-m", *command], check=True, timeout=10)

    @property
    def audit_file(self) -> Path:
        """The audit file as seen from outside: the tmpfs exists only in the server's
        namespace, so it is read through /proc/PID/root."""
        return Path(f"/proc/{self.server.process.pid}/root{self.audit_dir}/audit.jsonl")


# Start a server on a tmpfs mounted with these options (`mount -o`); stopped after the test.
StartNamespaced = Callable[[str], NamespacedServer]


@pytest.fixture
def namespaced(tokens: Tokens, tmp_path: Path, audit_keys: AuditKeys) -> Iterator[StartNamespaced]:
    started: list[NamespacedServer] = []

    def start(options: str) -> NamespacedServer:
        audit_dir = tmp_path / "audit"
        server = start_in_mount_namespace(tokens, audit_keys, tmp_path, audit_dir, options)
        started.append(NamespacedServer(server, audit_dir, audit_keys))
        return started[-1]

    yield start
    for namespace in started:
        namespace.server.stop()


@pytest.mark.ping
def test_read_only_filesystem_fails_closed_then_recovers(namespaced: StartNamespaced) -> None:
    """EROFS on a real server: 503 and not ready, events on stdout; writable again: recovers."""
    ns = namespaced("ro,size=1m,mode=0700")
    with ns.server.client("pinger") as client:
        assert_audit_unavailable(client.post("/api/v1/ping", json=PING))
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        log = ns.server.log_text()
        failed = next(r for r in audit_records(log) if r["event"] == "audit_file_failed")
        assert "Read-only file system" in failed["reason"]
        assert any(r["event"] == "server_start" for r in audit_records(log))
        assert any(r.get("reason") == "audit_unavailable" for r in audit_records(log))

        ns.run("mount", "-o", "remount,rw", str(ns.audit_dir))
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/ping", json=PING).status_code == 200
    assert_chain_recovered(ns.audit_file, ns.keys)


@pytest.mark.ping
def test_full_disk_fails_closed_then_recovers(namespaced: StartNamespaced) -> None:
    """ENOSPC after start: pings turn into 503 within a few requests; space freed: recovers."""
    ns = namespaced("size=64k,mode=0700")
    filler = ns.audit_dir / "filler"
    with ns.server.client("pinger") as client:
        assert client.post("/api/v1/ping", json=PING).status_code == 200
        ns.run("sh", "-c", f"dd if=/dev/zero of={filler} bs=4k 2>/dev/null || true")
        statuses = []
        for _ in range(40):  # records share the file's last page until it is full
            statuses.append(client.post("/api/v1/ping", json=PING).status_code)
            if statuses[-1] == 503:
                break
        assert statuses[-1] == 503, statuses
        assert client.get("/readyz").status_code == 503
        failed = next(
            r for r in audit_records(ns.server.log_text()) if r["event"] == "audit_file_failed"
        )
        assert "No space left" in failed["reason"]

        ns.run("rm", str(filler))
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/ping", json=PING).status_code == 200
    result = verify([ns.audit_file], ns.keys.verify)
    assert result.ok, result.describe()  # a failed write never leaves a torn record
    assert "audit_file_recovered" in [r["event"] for r in file_records(ns.audit_file)]
