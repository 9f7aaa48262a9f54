"""The key ceremony: a key is required with an audit file, the evolved key belongs to one
initial key, `pingcalc check` says when the initial key should have been removed, and no key
ever appears in a log line, an audit record or the CLI's output.

Threats: TM-24 (a key left readable lets an intruder re-seal the whole trail) and TM-06
(secrets in logs), against a real server and the real CLI where a process boundary matters.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pingcalc.audit import Auditor, ChainedFileSink, StdoutSink, rotated_paths
from pingcalc.audit.keys import read_initial_key, read_state_header, state_path
from pingcalc.check import check_audit_key
from pingcalc.settings import Settings, SettingsError
from tests_support import AuditKeys, LiveServer, Tokens, audit_records, run_pingcalc


def test_an_audit_file_without_a_key_is_refused_at_start(
    tokens: Tokens, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """PINGCALC_AUDIT_FILE alone is a settings error naming the fix, and the server does not
    start (no unsealed trail)."""
    with pytest.raises(SettingsError, match=r"PINGCALC_AUDIT_KEY_FILE.*audit keygen"):
        make_settings(audit_file=tmp_path / "audit.jsonl")
    env = {"PINGCALC_TOKENS_FILE": str(tokens.path), "PINGCALC_AUDIT_FILE": str(tmp_path / "a")}
    run = run_pingcalc("serve", env=env, cwd=tmp_path)
    assert run.returncode == 2 and "PINGCALC_AUDIT_KEY_FILE" in run.stderr


def test_the_evolved_key_of_another_initial_key_is_refused(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """A new initial key with the old state beside the file fails closed with the reason,
    instead of silently sealing with a key the operator cannot verify."""
    path = tmp_path / "audit.jsonl"
    first = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, audit_keys.service)])
    assert first.emit("ping", outcome="success")
    first.close()
    other = AuditKeys.create(tmp_path / "other")
    second = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, other.service)])
    assert second.emit("ping", outcome="success") is False
    assert "belongs to key id" in (second.last_error or "")


def test_check_warns_while_the_initial_key_is_mounted_after_it_evolved(
    tmp_path: Path, audit_keys: AuditKeys, make_settings: Callable[..., Settings]
) -> None:
    """First start: pass. Key evolved and the initial key still there: warn with the fix.
    Initial key removed: pass. Neither key: fail (nothing can be sealed)."""
    path = tmp_path / "audit" / "audit.jsonl"
    settings = make_settings(**audit_keys.settings(path))
    assert [f.level for f in check_audit_key(settings)] == ["pass"]
    auditor = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, audit_keys.service)])
    assert auditor.emit("ping", outcome="success")
    assert [f.level for f in check_audit_key(settings)] == [
        "pass"
    ]  # epoch 0: nothing to protect yet
    auditor.close()  # checkpoints: the key evolves to epoch 1
    (warning,) = check_audit_key(settings)
    assert warning.level == "warn" and "epoch 1" in warning.message
    assert "remove the secret" in warning.fix
    audit_keys.service.unlink()
    assert [f.level for f in check_audit_key(settings)] == ["pass"]
    state_path(path).unlink()
    (failure,) = check_audit_key(settings)
    assert failure.level == "fail" and "cannot be sealed" in failure.message


def test_check_fails_an_initial_key_readable_by_others(
    tmp_path: Path, audit_keys: AuditKeys, make_settings: Callable[..., Settings]
) -> None:
    """A world-readable initial key lets any local user re-seal the trail: a failure."""
    audit_keys.service.chmod(0o644)
    settings = make_settings(**audit_keys.settings(tmp_path / "a.jsonl"))
    levels = {f.level: f for f in check_audit_key(settings)}
    assert "fail" in levels and "defaultMode 0400" in levels["fail"].fix


def every_key_hex(keys: AuditKeys, epochs: int) -> list[str]:
    """k0 .. k_epochs in hex, as they would appear if anything leaked them."""
    key = read_initial_key(keys.verify)
    found = []
    for epoch in range(epochs + 1):
        key.advance_to(epoch)
        found.append(key.hex().decode())
    return found


def test_a_real_server_checkpoints_on_its_interval_and_at_shutdown_and_never_shows_a_key(
    server_factory: Callable[..., LiveServer],
    tokens: Tokens,
    audit_keys: AuditKeys,
    tmp_path: Path,
) -> None:
    """A real server (PINGCALC_AUDIT_CHECKPOINT_SECONDS=0.3) prints sealed checkpoints on
    stdout while it runs and once more at SIGTERM; its saved log anchors the file for
    `pingcalc audit verify`; no key, initial or evolved, is in its output, the audit file or
    the CLI's output."""
    audit_file = tmp_path / "audit" / "audit.jsonl"
    env = audit_keys.env(audit_file) | {"PINGCALC_AUDIT_CHECKPOINT_SECONDS": "0.3"}
    server = server_factory(env=env)
    with server.client("calc") as client:
        for index in range(3):
            response = client.post("/api/v1/calculate", json={"expression": f"{index}+1"})
            assert response.status_code == 200
            deadline = time.monotonic() + 10
            while (
                sum(r["event"] == "audit_checkpoint" for r in audit_records(server.log_text()))
                <= index
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
    assert server.stop() == 0
    shipped = [r for r in audit_records(server.log_text()) if r["event"] == "audit_checkpoint"]
    assert len(shipped) >= 4  # three while running, one at shutdown after server_stop
    cli_env = {**audit_keys.env(audit_file), "PINGCALC_TOKENS_FILE": str(tokens.path)}
    created = run_pingcalc("token", "create", "ops", "--scope", "ping", env=cli_env, check=True)
    files = [str(p) for p in [*rotated_paths(audit_file), audit_file]]
    verify = ("audit", "verify", "--key", str(audit_keys.verify),
              "--checkpoints", str(server.log_path), *files)  # fmt: skip
    verdict = run_pingcalc(*verify)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    epochs = read_state_header(state_path(audit_file)).epoch
    assert epochs >= 5  # the CLI's close checkpointed too
    everything = (
        server.log_text() + audit_file.read_text() + created.stdout + created.stderr
        + verdict.stdout + verdict.stderr
    )  # fmt: skip
    for key in every_key_hex(audit_keys, epochs):
        assert key not in everything and key.upper() not in everything
    # The cut tail the checkpoints exist for: drop the last records, verify fails.
    lines = audit_file.read_bytes().splitlines(keepends=True)
    audit_file.write_bytes(b"".join(lines[:-3]))
    cut = run_pingcalc(*verify)
    assert cut.returncode == 1 and "cut tail" in cut.stdout
    assert cut.stdout.startswith(f"{audit_file}:")


def test_the_service_without_any_key_is_not_ready(
    server_factory: Callable[..., LiveServer], audit_keys: AuditKeys, tmp_path: Path
) -> None:
    """A real server whose initial key is gone and has no evolved key cannot seal: audited
    actions answer 503 and /readyz is not ready, with the reason on stdout (fail closed)."""
    audit_file = tmp_path / "audit" / "audit.jsonl"
    env = audit_keys.env(audit_file) | {"PINGCALC_AUDIT_KEY_FILE": str(tmp_path / "gone.key")}
    server = server_factory(env=env)
    ready = httpx.get(server.url + "/readyz", timeout=10)
    assert ready.status_code == 503
    failed = [r for r in audit_records(server.log_text()) if r["event"] == "audit_file_failed"]
    assert failed and "is gone" in failed[0]["reason"]
