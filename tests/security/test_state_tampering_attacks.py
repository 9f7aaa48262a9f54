"""Tampering with the server's files while it runs: the audit directory, the tokens file.

An audited action whose record cannot be written is refused from the very first one
(TM-11, AU-5); a tokens file that stops parsing is reported once per change and never
silently ignored (TM-01).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ping_fakes import datagram_icmp_allowed
from pingcalc.auth import read_records, write_records
from tests_support import AuditKeys, LiveServer, Tokens, audit_records, file_records, log_records

CALC = {"expression": "6*7"}


@contextmanager
def swapped(path: Path, aside: Path, stand_in: Callable[[Path], object]) -> Iterator[None]:
    """`path` moved to `aside` and `stand_in(path)` made in its place for the block; the
    original is put back afterwards, also when the block fails."""
    path.rename(aside)
    stand_in(path)
    try:
        yield
    finally:
        path.unlink()
        aside.rename(path)


def test_the_first_calculation_after_the_audit_directory_is_replaced_is_refused(
    server_factory: Callable[..., LiveServer], tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """Replacing the audit directory with a file makes the very next calculation a 503, not
    a 200 whose record reached stdout only; restoring it restores service (AU-5, TM-11)."""
    audit_dir = tmp_path / "audit"
    server = server_factory(env=audit_keys.env(audit_dir / "audit.jsonl"))
    with server.client("calc") as client:
        assert client.post("/api/v1/calculate", json=CALC).status_code == 200
        with swapped(
            audit_dir, tmp_path / "audit.moved", lambda p: p.write_text("not a directory any more")
        ):
            first = client.post("/api/v1/calculate", json={"expression": "1+1"})
            assert first.status_code == 503, first.text
            assert first.json()["type"].endswith("audit-unavailable")
            # The streams that still work say what the client really got.
            refused = [
                r
                for r in audit_records(server.log_text())
                if r["request_id"] == first.headers["x-request-id"]
            ]
            assert refused[-1]["event"] == "calculation_rejected"
            assert refused[-1]["reason"] == "audit_unavailable"
            assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/calculate", json=CALC).status_code == 200
    # Nothing answered 200 without its record in the file.
    filed = file_records(audit_dir / "audit.jsonl")
    answered = [r for r in filed if r["event"] == "calculation"]
    assert [r["expression"] for r in answered] == ["6*7", "6*7"]


def test_the_first_ping_after_the_audit_directory_is_replaced_is_refused(
    server_factory: Callable[..., LiveServer], tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """The same for pings: no unrecorded ping is answered 200 (AU-5, TM-11)."""
    audit_dir = tmp_path / "audit"
    with datagram_icmp_allowed():
        server = server_factory(
            env=audit_keys.env(audit_dir / "audit.jsonl") | {"PINGCALC_PING_BACKEND": "datagram"}
        )
        ping = {"target": "127.0.0.1", "count": 1}
        with server.client("pinger") as client:
            assert client.post("/api/v1/ping", json=ping).status_code == 200
            with swapped(audit_dir, tmp_path / "audit.moved", lambda p: p.write_text("")):
                assert client.post("/api/v1/ping", json=ping).status_code == 503
            assert client.post("/api/v1/ping", json=ping).status_code == 200


@pytest.mark.ping  # expects /readyz 'ready', which needs a ping backend
def test_a_tokens_file_that_stops_parsing_is_reported_once_and_the_last_view_kept(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """A hand edit with a stray comma keeps the last good view (nobody locked out, nobody new
    let in), and says so: one warning and one audit record per change, /readyz degraded
    until the file is fixed, when the intended revocation takes effect (TM-01)."""
    server = server_factory()
    good = tokens.path.read_text()
    kept = [record for record in read_records(tokens.path) if record.name != "calc"]
    broken = good.replace('"tokens": [', '"tokens": [,', 1)
    with server.client("calc") as client:
        tokens.path.write_text(broken)
        for _ in range(5):
            assert client.post("/api/v1/calculate", json=CALC).status_code == 200
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and "tokens_file" in ready["checks"]
        time.sleep(0.01)
        tokens.path.write_text(broken + " ")  # another broken version: reported again
        assert client.post("/api/v1/calculate", json=CALC).status_code == 200
        # Fixed, with the revocation the operator meant: it takes effect at once.
        write_records(tokens.path, kept)
        assert client.post("/api/v1/calculate", json=CALC).status_code == 401
        assert client.get("/readyz").json()["status"] == "ready"
    failures = [r for r in audit_records(server.log_text()) if r["event"] == "tokens_reload_failed"]
    warnings = [
        r
        for r in log_records(server.log_text())
        if r.get("event") == "tokens_reload_failed" and r.get("level") == "warning"
    ]
    assert len(failures) == 2 and len(warnings) == 2
    assert all("malformed" in r["error"] for r in failures)


def test_an_audit_file_swapped_for_a_symlink_is_refused(
    server_factory: Callable[..., LiveServer], tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """A symlink to /dev/null in the trail's place would swallow every record while looking
    writable: it is never followed, so calculations get 503 until the file is back (the attack
    pass's F9, AU-9)."""
    audit_dir = tmp_path / "audit"
    server = server_factory(env=audit_keys.env(audit_dir / "audit.jsonl"))
    live = audit_dir / "audit.jsonl"
    with server.client("calc") as client:
        assert client.post("/api/v1/calculate", json=CALC).status_code == 200
        with swapped(live, tmp_path / "audit.saved", lambda p: p.symlink_to("/dev/null")):
            for _ in range(3):
                assert client.post("/api/v1/calculate", json=CALC).status_code == 503
            assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/calculate", json=CALC).status_code == 200


def test_a_lock_held_on_the_audit_file_fails_closed_instead_of_freezing(
    server_factory: Callable[..., LiveServer], tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """Someone holding a lock on the trail cannot freeze the server: audited actions get 503
    within a fraction of a second, the probes keep answering, and service resumes when the
    lock goes (the attack pass's F8, AU-5)."""
    audit_dir = tmp_path / "audit"
    server = server_factory(env=audit_keys.env(audit_dir / "audit.jsonl"))
    with server.client("calc") as client:
        assert client.post("/api/v1/calculate", json=CALC).status_code == 200
        with (audit_dir / "audit.jsonl").open("rb") as held:
            fcntl.flock(held, fcntl.LOCK_SH)
            started = time.monotonic()
            refused = client.post("/api/v1/calculate", json=CALC)
            assert refused.status_code == 503 and time.monotonic() - started < 2
            assert client.get("/healthz").status_code == 200
            fcntl.flock(held, fcntl.LOCK_UN)
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/calculate", json=CALC).status_code == 200
