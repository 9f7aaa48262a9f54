"""The objects one application instance works with, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from pingcalc.audit import Auditor
from pingcalc.auth import TokenStore
from pingcalc.calc import Evaluator, Limits
from pingcalc.limits import ConcurrencyCap, PenaltyBox, RateLimiter, SharedConcurrencyCap
from pingcalc.metrics import Metrics
from pingcalc.ping import PingBackend, ReselectingBackend, TargetPolicy
from pingcalc.settings import Settings


@dataclass
class Services:
    """Everything a request handler may need, injected with FastAPI `Depends`."""

    settings: Settings
    tokens: TokenStore
    limiter: RateLimiter
    audit: Auditor
    ping_cap: ConcurrencyCap
    evaluator: Evaluator
    pinger: PingBackend
    ping_backend_reason: str  # why this backend: for the start-up log and `pingcalc check`
    ping_policy: TargetPolicy
    metrics: Metrics = field(default_factory=Metrics)
    penalty_box: PenaltyBox = field(default_factory=PenaltyBox)


def build_services(settings: Settings) -> Services:
    """Construct the services for `settings`."""
    metrics = Metrics()
    audit = Auditor(
        settings.audit_file,
        max_bytes=settings.audit_max_bytes,
        on_failure=settings.audit_on_failure,
        observer=metrics.observe_audit,
    )
    limiter = RateLimiter(
        settings.rate_limit_storage,
        enabled=settings.rate_limit_enabled,
        on_switch=lambda event, fields: audit.emit(event, outcome="info", **fields),
    )
    pinger = ReselectingBackend(
        settings.ping_backend,
        ping_path=str(settings.ping_binary) if settings.ping_binary else None,
        on_switch=lambda fields: audit.emit("ping_backend_changed", outcome="info", **fields),
    )
    ping_cap = _ping_cap(settings, limiter)
    metrics.track_pings_in_flight(lambda: ping_cap.in_flight)
    return Services(
        settings=settings,
        tokens=TokenStore(settings.tokens_file),
        limiter=limiter,
        audit=audit,
        ping_cap=ping_cap,
        evaluator=Evaluator(Limits.from_settings(settings), cache_size=settings.calc_cache_size),
        pinger=pinger,
        ping_backend_reason=pinger.reason,
        ping_policy=TargetPolicy(settings.ping_allow, settings.ping_deny),
        metrics=metrics,
    )


def _ping_cap(settings: Settings, limiter: RateLimiter) -> ConcurrencyCap:
    """Per-process caps with memory://; caps shared across replicas with redis://."""
    if limiter.shared:
        return SharedConcurrencyCap(
            settings.ping_max_in_flight,
            settings.ping_max_per_token,
            name="ping",
            redis_uri=settings.rate_limit_storage,
            limiter=limiter,
        )
    return ConcurrencyCap(settings.ping_max_in_flight, settings.ping_max_per_token, name="ping")
