"""`pingcalc check`: a self-audit of the effective configuration and environment.

Each check gives one finding: ``pass``, ``info``, ``warn`` or ``fail``, with a fix for
anything not passing. The command exits non-zero when any check fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pingcalc.auth import CREATE_COMMAND, TokenStoreError, read_records
from pingcalc.ping.interface import BackendStatus
from pingcalc.settings import Settings, parse_networks
from pingcalc.throttle import RateLimiter, RedisLink, redact_uri
from pingcalc.throttle.redis_link import is_redis_uri

Level = Literal["pass", "info", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report."""

    level: Level  # "fail" makes `pingcalc check` exit 1
    check: str
    message: str
    fix: str = ""

    def render(self) -> str:
        line = f"{self.level.upper():<4}  {self.check:<14} {self.message}"
        return f"{line}; fix: {self.fix}" if self.fix else line


@dataclass(frozen=True, slots=True)
class Environment:
    """Facts about the process that the checks judge; injectable so tests can simulate them."""

    euid: int
    in_container: bool
    ping: BackendStatus

    @classmethod
    def detect(cls, settings: Settings) -> Environment:
        return cls(euid=os.geteuid(), in_container=_in_container(), ping=probe_ping(settings))


def probe_ping(settings: Settings) -> BackendStatus:
    """Whether this process can send pings with the configured backend, and if not, why."""
    from pingcalc.ping import select_backend
    from pingcalc.ping.selection import operator_fix

    ping_path = str(settings.ping_binary) if settings.ping_binary else None
    try:
        backend, _ = select_backend(settings.ping_backend, ping_path=ping_path)
    except Exception as exc:  # report any selection failure as a finding, not a traceback
        return BackendStatus(False, settings.ping_backend, str(exc), operator_fix())
    return backend.status()


def _in_container() -> bool:
    if Path("/.dockerenv").exists() or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    try:
        cgroup = Path("/proc/1/cgroup").read_text()
    except OSError:
        return False
    return any(marker in cgroup for marker in ("docker", "kubepods", "containerd", "libpod"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, env: Environment) -> Finding:
    where = f"{settings.host}:{settings.port}"
    if _is_loopback(settings.host):
        return Finding("pass", "bind", f"{where} is loopback")
    if env.in_container:
        return Finding(
            "pass", "bind", f"{where} inside a container; publish the port on 127.0.0.1 only"
        )
    return Finding(
        "fail",
        "bind",
        f"{where} is reachable from other hosts and this is not a container",
        "set PINGCALC_HOST=127.0.0.1 and put a reverse proxy in front if others need access",
    )


def check_forwarded(settings: Settings) -> Finding:
    networks, everyone = parse_networks(settings.forwarded_allow_ips)
    if everyone:
        return Finding(
            "fail",
            "forwarded",
            "PINGCALC_FORWARDED_ALLOW_IPS=* believes every client's X-Forwarded-For: anyone can "
            "choose the address their rate limits, penalty box and audit records use",
            "list only the reverse proxies' addresses or network, e.g. 10.0.0.0/24",
        )
    if not networks:
        return Finding("pass", "forwarded", "X-Forwarded-For is ignored (no trusted proxy)")
    shown = ", ".join(str(net) for net in networks)
    return Finding("pass", "forwarded", f"X-Forwarded-For is believed only from {shown}")


def check_user(env: Environment) -> Finding:
    if env.euid == 0:
        return Finding(
            "fail",
            "user",
            "running as root (uid 0)",
            "run as an unprivileged user, e.g. docker run --user 10001:10001 (the image does)",
        )
    return Finding("pass", "user", f"running as uid {env.euid}")


def check_tokens(settings: Settings) -> list[Finding]:
    path = settings.tokens_file
    try:
        records = read_records(path)
    except TokenStoreError as exc:
        return [Finding("fail", "tokens", str(exc), "recreate the file with pingcalc token create")]
    findings: list[Finding] = []
    if not records:
        findings.append(
            Finding(
                "fail",
                "tokens",
                f"no tokens in {path}; the server refuses to start",
                CREATE_COMMAND,
            )
        )
    else:
        findings.append(Finding("pass", "tokens", f"{len(records)} token(s) in {path}"))
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o007:
            findings.append(
                Finding(
                    "fail",
                    "tokens-file",
                    f"{path} is readable by others (mode {mode:04o})",
                    f"chmod 600 {path}",
                )
            )
        elif mode & 0o070:
            findings.append(
                Finding(
                    "warn",
                    "tokens-file",
                    f"{path} is readable by its group (mode {mode:04o})",
                    f"chmod 600 {path} unless the group is the service's own",
                )
            )
        else:
            findings.append(Finding("pass", "tokens-file", f"{path} mode {mode:04o}"))
    return findings


def check_rate_limits(settings: Settings) -> list[Finding]:
    if not settings.rate_limit_enabled:
        return [
            Finding(
                "fail",
                "rate-limit",
                "rate limiting is disabled: token guessing and floods are not throttled",
                "set PINGCALC_RATE_LIMIT_ENABLED=true",
            )
        ]
    findings = [
        Finding(
            "pass",
            "rate-limit",
            f"per ip {settings.rate_limit_per_ip}, per token {settings.rate_limit_per_token}, "
            f"auth failures {settings.auth_failures_per_ip}",
        )
    ]
    if settings.workers > 1 and settings.rate_limit_storage.startswith("memory://"):
        findings.append(
            Finding(
                "warn",
                "rate-limit",
                f"{settings.workers} workers with memory:// count rate limits per worker (and "
                "every worker has its own connection caps)",
                "set PINGCALC_RATE_LIMIT_STORAGE=redis://... to share them",
            )
        )
    return findings


def check_audit(settings: Settings) -> Finding:
    if settings.audit_on_failure == "open":
        return Finding(
            "warn",
            "audit",
            "PINGCALC_AUDIT_ON_FAILURE=open: requests proceed when audit records cannot be written",
            "set PINGCALC_AUDIT_ON_FAILURE=closed",
        )
    if settings.audit_file is None:
        return Finding(
            "info", "audit", "audit events go to stdout only (no hash-chained PINGCALC_AUDIT_FILE)"
        )
    return Finding("pass", "audit", f"sealed audit file {settings.audit_file}, fail closed")


def check_audit_key(settings: Settings) -> list[Finding]:
    """The key ceremony: a private initial key that is removed once the key has evolved."""
    from pingcalc.audit.errors import AuditKeyError
    from pingcalc.audit.keys import read_state_header, state_path

    if settings.audit_file is None or settings.audit_key_file is None:
        return []
    initial, state = settings.audit_key_file, state_path(settings.audit_file)
    findings: list[Finding] = []
    if initial.exists() and stat.S_IMODE(initial.stat().st_mode) & 0o007:
        findings.append(
            Finding(
                "fail",
                "audit-key",
                f"{initial} is readable by others: they could re-seal the whole trail",
                f"chmod 600 {initial} (Kubernetes: defaultMode 0400 on the secret volume)",
            )
        )
    try:
        epoch = read_state_header(state).epoch
    except FileNotFoundError:
        if initial.exists():
            return [*findings, Finding("pass", "audit-key", f"initial key {initial}, first start")]
        return [
            *findings,
            Finding(
                "fail",
                "audit-key",
                f"neither the evolved key {state} nor the initial key {initial} exists: "
                "records cannot be sealed",
                "restore the state file, or start a new trail: pingcalc audit keygen",
            ),
        ]
    except (OSError, AuditKeyError) as exc:
        return [*findings, Finding("fail", "audit-key", f"the evolved key {state}: {exc}")]
    if epoch > 0 and initial.exists():
        findings.append(
            Finding(
                "warn",
                "audit-key",
                f"the initial key {initial} is still readable although the key has evolved to "
                f"epoch {epoch}: whoever reads it can re-seal every past epoch",
                "remove the secret from the service now that it has started (docs/audit.md, "
                "key ceremony); keep the offline copy",
            )
        )
    else:
        findings.append(Finding("pass", "audit-key", f"evolved key at epoch {epoch}"))
    return findings


def check_ping_backend(env: Environment) -> Finding:
    ping = env.ping
    if not ping.available:
        return Finding("fail", "ping-backend", f"no usable ping backend: {ping.reason}", ping.fix)
    return Finding("info", "ping-backend", f"{ping.backend}: {ping.reason}")


async def check_redis(settings: Settings) -> Finding | None:
    if not is_redis_uri(settings.rate_limit_storage):
        return None
    shown = redact_uri(settings.rate_limit_storage)
    limiter = RateLimiter(RedisLink(settings.rate_limit_storage))
    if await limiter.reachable():
        return Finding("pass", "redis", f"{shown} answers; limits are shared")
    return Finding(
        "fail",
        "redis",
        f"{shown} is configured but unreachable; limits would be per process only",
        "start Redis or fix PINGCALC_RATE_LIMIT_STORAGE",
    )


def run_checks(settings: Settings, env: Environment | None = None) -> list[Finding]:
    """Every check, in report order."""
    env = env or Environment.detect(settings)
    findings = [check_bind(settings, env), check_forwarded(settings), check_user(env)]
    findings += check_tokens(settings)
    findings += check_rate_limits(settings)
    findings.append(check_audit(settings))
    findings += check_audit_key(settings)
    findings.append(check_ping_backend(env))
    redis = asyncio.run(check_redis(settings))
    if redis is not None:
        findings.append(redis)
    return findings
