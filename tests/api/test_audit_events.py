"""Each audit event, produced by a real request, carries the documented fields (docs/audit.md).

Threat: repudiation (NIST AU-2, AU-3, AU-12): failed and refused requests, every ping and
every token change must leave a record saying who, from where, what, and with which outcome;
and the records themselves must never leak a token (information disclosure).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ping_fakes import RecordingBackend, services_with
from pingcalc.api.edge import Edge
from pingcalc.app import create_app
from pingcalc.audit import FIXED_FIELDS, verify
from pingcalc.settings import Settings
from tests_support import AuditKeys, LiveServer, Tokens, audit_records, file_records, run_pingcalc

Record = dict[str, Any]


def only(records: list[Record], event: str) -> Record:
    matching = [r for r in records if r["event"] == event]
    assert len(matching) == 1, [r["event"] for r in records]
    return matching[0]


def assert_schema(record: Record) -> None:
    """Every record has the fixed fields, a UTC RFC 3339 time and, in the file, its chain."""
    for name in ("ts", "event", *FIXED_FIELDS):
        assert name in record, name
    assert record["ts"].endswith("Z") and "T" in record["ts"]


@dataclass
class Audited:
    """An in-process app with an audit file; stdout is captured by capsys."""

    app: Edge
    client: TestClient
    file: Path
    backend: RecordingBackend
    capsys: pytest.CaptureFixture[str]

    def stdout_records(self) -> list[Record]:
        return audit_records(self.capsys.readouterr().out)

    def file_records(self) -> list[Record]:
        return file_records(self.file)

    def recorded(self, event: str, **fields: Any) -> Record:
        """The one stdout record of `event`, checked to have the fields every record has and
        each of `fields` with the value given."""
        record = only(self.stdout_records(), event)
        assert_schema(record)
        assert {name: record[name] for name in fields if name in record} == fields
        return record


@pytest.fixture
def audited_factory(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    audit_keys: AuditKeys,
    open_client: Callable[[Edge], TestClient],
) -> Callable[..., Audited]:
    def build(**overrides: Any) -> Audited:
        file = tmp_path / "audit" / "audit.jsonl"
        settings = make_settings(**audit_keys.settings(file), **overrides)
        backend = RecordingBackend()
        app = create_app(settings, services=services_with(settings, backend))
        return Audited(app, open_client(app), file, backend, capsys)

    return build


@pytest.fixture
def audited(audited_factory: Callable[..., Audited]) -> Audited:
    return audited_factory()


def test_auth_failure_is_audited_with_request_id_and_reason(
    audited: Audited, tokens: Tokens
) -> None:
    """A missing or wrong token leaves `auth_failure` with the request id, address and reason."""
    missing = audited.client.post("/api/v1/ping", json={"target": "127.0.0.1"})
    wrong = audited.client.post(
        "/api/v1/ping",
        json={"target": "127.0.0.1"},
        headers={"Authorization": "Bearer pc_notarealtokennotarealtoken0000"},
    )
    assert (missing.status_code, wrong.status_code) == (401, 401)
    records = [r for r in audited.stdout_records() if r["event"] == "auth_failure"]
    assert [r["reason"] for r in records] == ["missing_token", "invalid_token"]
    for record, response in zip(records, (missing, wrong), strict=True):
        assert_schema(record)
        assert record["request_id"] == response.headers["x-request-id"]
        assert record["client_ip"] == "testclient"
        assert record["token"] is None and record["outcome"] == "denied"
        assert record["path"] == "/api/v1/ping"
    assert [r["event"] for r in audited.file_records()].count("auth_failure") == 2


def test_authorization_denial_is_audited_with_token_name_and_scope(
    audited: Audited, tokens: Tokens
) -> None:
    """A valid token without the scope leaves `authz_denied` naming the token and the scope."""
    response = audited.client.post(
        "/api/v1/ping", json={"target": "127.0.0.1"}, headers=tokens.header("calc")
    )
    assert response.status_code == 403
    audited.recorded(
        "authz_denied", token="calc", outcome="denied", reason="missing_scope", scope="ping"
    )
    assert audited.backend.calls == []


def test_rate_limit_rejection_is_audited(
    audited_factory: Callable[..., Audited], tokens: Tokens
) -> None:
    """The request over the per-token limit leaves `rate_limited` with the limit's reason."""
    audited = audited_factory(rate_limit_per_token="2/minute")
    statuses = [
        audited.client.get("/metrics", headers=tokens.header("full")).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    audited.recorded("rate_limited", token="full", outcome="denied", reason="token_rate_limit")


def test_calculation_is_audited_with_bounded_expression_and_result(
    audited_factory: Callable[..., Audited], tokens: Tokens
) -> None:
    """Every calculation leaves `calculation` with the expression (cut to the audit bound) and
    the result, in stdout and in the hash-chained file (NIST AU-2, AU-3)."""
    audited = audited_factory(audit_expression_max=12)
    expression = "1 + 2 + 3 + 4 + 5 + 6 + 7 + 8"
    response = audited.client.post(
        "/api/v1/calculate", json={"expression": expression}, headers=tokens.header("calc")
    )
    assert response.status_code == 200 and response.json()["result"] == 36
    record = audited.recorded("calculation", token="calc", outcome="success", result=36)
    assert record["expression"] == "1 + 2 + 3..."  # cut to 12 characters, marked as cut
    assert record["request_id"] == response.headers["x-request-id"]
    stored = only(audited.file_records(), "calculation")
    assert stored["mac"] == record["mac"]


def test_calculation_rejection_is_audited_with_reason_and_position(
    audited: Audited, tokens: Tokens
) -> None:
    """A refused expression leaves `calculation_rejected` with the error class and column, and
    control characters in it are escaped, never written raw (log injection)."""
    response = audited.client.post(
        "/api/v1/calculate",
        json={"expression": "2 * __import__('os')\n"},
        headers=tokens.header("calc"),
    )
    assert response.status_code == 422
    record = audited.recorded("calculation_rejected", token="calc", outcome="rejected")
    assert record["reason"].startswith("Calc") and isinstance(record["position"], int)
    assert "\n" not in record["expression"]


def test_ping_is_audited_with_target_and_result_summary(audited: Audited, tokens: Tokens) -> None:
    """Every ping leaves `ping` with the target and sent/received/loss, in stdout and the file."""
    response = audited.client.post(
        "/api/v1/ping", json={"target": "127.0.0.1", "count": 2}, headers=tokens.header("pinger")
    )
    assert response.status_code == 200
    record = audited.recorded("ping", token="pinger", outcome="success", target="127.0.0.1")
    assert (record["sent"], record["received"], record["loss_percent"]) == (2, 2, 0.0)
    stored = only(audited.file_records(), "ping")
    assert stored["mac"] == record["mac"] and stored["request_id"] == record["request_id"]


@pytest.mark.parametrize(
    ("target", "status", "reason"),
    [("not an address", 422, "invalid_target"), ("169.254.169.254", 403, "target_denied")],
)
def test_ping_rejection_is_audited_with_its_reason(
    audited: Audited, tokens: Tokens, target: str, status: int, reason: str
) -> None:
    """A refused ping leaves `ping_rejected` with the reason and the (bounded) target."""
    response = audited.client.post(
        "/api/v1/ping", json={"target": target}, headers=tokens.header("pinger")
    )
    assert response.status_code == status
    audited.recorded(
        "ping_rejected", token="pinger", outcome="rejected", reason=reason, target=target
    )
    assert audited.backend.calls == []


def test_capacity_rejection_is_audited(
    audited_factory: Callable[..., Audited], tokens: Tokens
) -> None:
    """A ping over the per-token concurrency cap leaves `capacity_rejected`."""
    audited = audited_factory(ping_max_per_token=1)
    audited.backend.delay = 0.3

    async def two_at_once() -> list[int]:
        transport = httpx.ASGITransport(app=audited.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/ping",
                        json={"target": "127.0.0.1", "count": 1},
                        headers=tokens.header("pinger"),
                    )
                    for _ in range(2)
                )
            )
        return sorted(r.status_code for r in responses)

    assert asyncio.run(two_at_once()) == [200, 429]
    audited.recorded(
        "capacity_rejected", token="pinger", outcome="rejected", reason="ping_per_token_capacity"
    )


def run_cli(
    tokens: Tokens, keys: AuditKeys, audit_file: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {**keys.env(audit_file), "PINGCALC_TOKENS_FILE": str(tokens.path)}
    return run_pingcalc(*args, env=env, check=True)


def test_token_created_and_revoked_are_audited_without_the_secret(
    tokens: Tokens, tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """The CLI records `token_created` and `token_revoked` (name and scopes, never the secret)
    in the sealed file, and checkpoints it when it exits."""
    audit_file = tmp_path / "audit.jsonl"
    created = run_cli(tokens, audit_keys, audit_file, "token", "create", "ops", "--scope", "ping")
    secret = created.stdout.strip()
    assert secret.startswith("pc_")
    revoked = run_cli(tokens, audit_keys, audit_file, "token", "revoke", "ops")
    chain = {"audit_chain_started", "audit_checkpoint"}
    shown = audit_records(created.stderr) + audit_records(revoked.stderr)
    stored = file_records(audit_file)
    assert [r["event"] for r in stored if r["event"] in chain] == [
        "audit_chain_started",
        "audit_checkpoint",
        "audit_checkpoint",
    ]
    for everything in (shown, stored):
        records = [r for r in everything if r["event"] not in chain]
        assert [r["event"] for r in records] == ["token_created", "token_revoked"]
        for record in records:
            assert_schema(record)
            assert (record["token"], record["client_ip"], record["outcome"]) == (
                "ops",
                "cli",
                "success",
            )
            assert isinstance(record["uid"], int)
        assert records[0]["scopes"] == ["ping"]
    assert verify([audit_file], audit_keys.verify).ok
    written = created.stderr + revoked.stderr + revoked.stdout + audit_file.read_text()
    assert secret not in written and secret[3:] not in written


def test_server_start_and_stop_are_audited_with_security_settings(
    server_factory: Callable[..., LiveServer], tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """A real server records `server_start` (effective security settings) and `server_stop`."""
    audit_file = tmp_path / "audit" / "audit.jsonl"
    server = server_factory(
        env=audit_keys.env(audit_file) | {"PINGCALC_RATE_LIMIT_PER_TOKEN": "7/minute"}
    )
    assert server.stop() == 0
    shown = audit_records(server.log_text())
    stored = file_records(audit_file)
    for records in (shown, stored):
        start, stop = only(records, "server_start"), only(records, "server_stop")
        assert_schema(start)
        assert_schema(stop)
        assert start["outcome"] == stop["outcome"] == "success"
        assert start["host"] == "127.0.0.1" and start["rate_limit_per_token"] == "7/minute"
        assert start["audit_file"] == str(audit_file) and start["audit_on_failure"] == "closed"
    assert verify([audit_file], audit_keys.verify, [server.log_path]).ok


def test_tokens_and_authorization_headers_never_appear(audited: Audited, tokens: Tokens) -> None:
    """No secret, and no `Bearer` value, reaches stdout or the audit file, whatever the outcome."""
    fake = "pc_" + "Z" * 43
    for name in ("full", "calc", "pinger"):
        for path in ("/api/v1/ping", "/metrics"):
            audited.client.post(path, json={"target": "127.0.0.1"}, headers=tokens.header(name))
            audited.client.get(path, headers=tokens.header(name))
    audited.client.post("/api/v1/ping", headers={"Authorization": f"Bearer {fake}"})
    audited.client.post("/api/v1/ping", headers={"Authorization": f"Basic {fake}"})
    audited.client.post(
        "/api/v1/ping", json={"target": fake}, headers=tokens.header("pinger")
    )  # a secret pasted into a field
    stdout = audited.capsys.readouterr().out
    stored = audited.file.read_text()
    records = audit_records(stdout)
    assert {"auth_failure", "authz_denied", "ping", "ping_rejected"} <= {
        r["event"] for r in records
    }
    assert only(records, "ping_rejected")["target"] == "[REDACTED]"
    for text in (stdout, stored):
        for secret in (*tokens.secrets.values(), fake):
            assert secret not in text
        lowered = text.lower()
        assert "bearer" not in lowered and "basic " not in lowered
        assert '"authorization"' not in lowered and "authorization:" not in lowered
