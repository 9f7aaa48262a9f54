"""`pingcalc check`: each finding comes from a real condition; a clean configuration passes.

Threats: insecure defaults and misconfiguration (T1610, CIS Docker 4.1/5.x, NIST CM-6).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pingcalc.check import Environment, Finding, probe_ping, run_checks
from pingcalc.ping.interface import BackendStatus
from pingcalc.ping.selection import operator_fix
from pingcalc.settings import Settings
from preflight import require
from tests_support import PINGCALC, Tokens, free_port

PING_WORKS = BackendStatus(True, "datagram", "datagram ICMP sockets are permitted")
UNPRIVILEGED = Environment(euid=10001, in_container=False, ping=PING_WORKS)


def _by_check(findings: list[Finding], name: str) -> list[Finding]:
    return [f for f in findings if f.check == name]


def test_clean_configuration_passes(make_settings: Callable[..., Settings]) -> None:
    """Loopback bind, non-root, 0600 tokens, limits on, fail-closed audit: nothing fails."""
    findings = run_checks(make_settings(), UNPRIVILEGED)
    assert not [f for f in findings if f.level == "fail"], findings
    assert _by_check(findings, "bind")[0].level == "pass"


def test_root_is_a_failure(make_settings: Callable[..., Settings]) -> None:
    """Running as uid 0 is reported with the fix (seed: Elevation of Privilege)."""
    findings = run_checks(make_settings(), Environment(euid=0, in_container=True, ping=PING_WORKS))
    user = _by_check(findings, "user")[0]
    assert user.level == "fail" and "10001" in user.fix


def test_non_loopback_bind_outside_container_fails(make_settings: Callable[..., Settings]) -> None:
    """0.0.0.0 outside a container exposes the service (seed: port on 0.0.0.0); inside, the
    publish decides, so it passes with a reminder."""
    settings = make_settings(host="0.0.0.0")
    assert _by_check(run_checks(settings, UNPRIVILEGED), "bind")[0].level == "fail"
    inside = Environment(euid=10001, in_container=True, ping=PING_WORKS)
    assert _by_check(run_checks(settings, inside), "bind")[0].level == "pass"


def test_world_readable_tokens_file_fails(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """A tokens file others can read is reported with `chmod 600` (NIST AC-6)."""
    tokens.path.chmod(0o644)
    finding = _by_check(run_checks(make_settings(), UNPRIVILEGED), "tokens-file")[0]
    assert finding.level == "fail" and "chmod 600" in finding.fix
    tokens.path.chmod(0o640)
    assert _by_check(run_checks(make_settings(), UNPRIVILEGED), "tokens-file")[0].level == "warn"


def test_no_tokens_fails(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """No tokens: the check says the server will refuse to start and how to create one."""
    finding = _by_check(
        run_checks(make_settings(tokens_file=tmp_path / "none.json"), UNPRIVILEGED), "tokens"
    )[0]
    assert finding.level == "fail" and "token create" in finding.fix


def test_rate_limiting_disabled_fails(make_settings: Callable[..., Settings]) -> None:
    """Disabled rate limits leave token guessing unthrottled (T1110)."""
    findings = run_checks(make_settings(rate_limit_enabled=False), UNPRIVILEGED)
    assert _by_check(findings, "rate-limit")[0].level == "fail"


def test_trusting_every_peer_fails(make_settings: Callable[..., Settings]) -> None:
    """`*` lets any client choose the address its limits and audit records use (TM-21);
    a listed proxy network passes."""
    loose = _by_check(run_checks(make_settings(forwarded_allow_ips="*"), UNPRIVILEGED), "forwarded")
    assert loose[0].level == "fail" and "10.0.0.0/24" in loose[0].fix
    listed = run_checks(make_settings(forwarded_allow_ips="10.0.0.0/24"), UNPRIVILEGED)
    assert _by_check(listed, "forwarded")[0].level == "pass"


def test_memory_limits_with_workers_warn(make_settings: Callable[..., Settings]) -> None:
    """Several workers on memory:// count limits per worker: a warning naming Redis."""
    findings = run_checks(make_settings(workers=4), UNPRIVILEGED)
    assert any(f.level == "warn" and "redis" in f.fix for f in _by_check(findings, "rate-limit"))


def test_audit_open_warns(make_settings: Callable[..., Settings]) -> None:
    """Fail-open audit is reported (NIST AU-5)."""
    finding = _by_check(run_checks(make_settings(audit_on_failure="open"), UNPRIVILEGED), "audit")
    assert finding[0].level == "warn" and "closed" in finding[0].fix


def test_ping_backend_is_reported(make_settings: Callable[..., Settings]) -> None:
    """The backend in use and why are on their own line."""
    finding = _by_check(run_checks(make_settings(), UNPRIVILEGED), "ping-backend")[0]
    assert finding.level == "info" and "datagram" in finding.message


def test_no_ping_backend_fails_with_the_fix(make_settings: Callable[..., Settings]) -> None:
    """A host where no backend works is a failure naming the cause and the exact fix."""
    broken = BackendStatus(
        False, "unavailable", "datagram ICMP sockets are not permitted", operator_fix()
    )
    env = Environment(euid=10001, in_container=False, ping=broken)
    finding = _by_check(run_checks(make_settings(), env), "ping-backend")[0]
    assert finding.level == "fail" and "not permitted" in finding.message
    assert "net.ipv4.ping_group_range" in finding.fix and "iputils-ping" in finding.fix


def test_the_ping_probe_reports_what_selection_finds(
    make_settings: Callable[..., Settings],
) -> None:
    """The real probe: a binary that does not exist, forced as the backend, is unavailable."""
    status = probe_ping(make_settings(ping_backend="subprocess", ping_binary="/nonexistent/ping"))
    assert not status.available and status.fix


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_unreachable_redis_fails(
    transport: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Redis configured but not answering, over TCP or a Unix socket, is a failure (limits
    would not be shared), and the report does not show its password."""
    uri = (
        f"unix://pingcalc:hunter2@{tmp_path}/absent.sock?db=0"
        if transport == "unix"
        else f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    )
    finding = _by_check(run_checks(make_settings(rate_limit_storage=uri), UNPRIVILEGED), "redis")[0]
    assert finding.level == "fail" and "hunter2" not in finding.message
    assert "***" in finding.message


@pytest.mark.ping
def test_cli_prints_one_line_per_check_and_fails_as_root(tokens: Tokens, tmp_path: Path) -> None:
    """The real command prints each finding with its fix and exits 1 on a failure. (The clean
    exit 0 is proven inside the container, as uid 10001: tests/container.)"""
    require("root")
    env = {"PATH": "/usr/bin:/bin", "PINGCALC_TOKENS_FILE": str(tokens.path)}
    result = subprocess.run(
        [PINGCALC, "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("FAIL  user") and "fix:" in line for line in lines)
    assert any(line.startswith("INFO  ping-backend") for line in lines)
    assert lines[-1].startswith("1 failed")
