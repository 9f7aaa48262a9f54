"""The objects one application instance works with, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from pingcalc.audit import Auditor, build_auditor
from pingcalc.auth import TokenStore
from pingcalc.calc import Bounds, Evaluator
from pingcalc.gate import Gate
from pingcalc.logs import get_logger
from pingcalc.metrics import Metrics
from pingcalc.ping import PingBackend, ReselectingBackend, Resolver, TargetPolicy, select_resolver
from pingcalc.settings import Settings
from pingcalc.throttle import (
    ConcurrencyCap,
    PenaltyBox,
    RateLimiter,
    RedisLink,
    SharedConcurrencyCap,
)
from pingcalc.throttle.redis_link import is_redis_uri


@dataclass
class Services:
    """Everything a request handler may need; the gate is derived from the others."""

    settings: Settings
    tokens: TokenStore
    limiter: RateLimiter
    audit: Auditor
    ping_cap: ConcurrencyCap
    evaluator: Evaluator
    pinger: PingBackend
    ping_backend_reason: str  # why this backend: for the start-up log and `pingcalc check`
    ping_policy: TargetPolicy
    resolver: Resolver  # host names of ping targets: one per process, so its lookup cap holds
    metrics: Metrics = field(default_factory=Metrics)
    penalty_box: PenaltyBox = field(default_factory=PenaltyBox)
    gate: Gate = field(init=False)

    def __post_init__(self) -> None:
        # Built here, not passed in: `dataclasses.replace(services, audit=...)` (tests)
        # rebuilds a gate over the replaced objects.
        settings = self.settings
        self.gate = Gate(
            tokens=self.tokens,
            limiter=self.limiter,
            box=self.penalty_box,
            audit=self.audit,
            per_ip=settings.rate_limit_per_ip,
            auth_failures=settings.auth_failures_per_ip,
            per_token=settings.rate_limit_per_token,
        )


def build_services(settings: Settings) -> Services:
    """Construct the services for `settings`."""
    metrics = Metrics()
    audit = build_auditor(settings, observer=metrics.observe_audit)

    def record_switch(event: str, fields: dict[str, object]) -> None:
        audit.emit(event, outcome="info", **fields)

    link = (
        RedisLink(settings.rate_limit_storage, on_switch=record_switch)
        if is_redis_uri(settings.rate_limit_storage)
        else None
    )
    limiter = RateLimiter(link, enabled=settings.rate_limit_enabled)
    pinger = ReselectingBackend(
        settings.ping_backend,
        ping_path=str(settings.ping_binary) if settings.ping_binary else None,
        on_switch=lambda fields: audit.emit("ping_backend_changed", outcome="info", **fields),
    )
    ping_cap: ConcurrencyCap = (
        SharedConcurrencyCap(
            settings.ping_max_in_flight, settings.ping_max_per_token, name="ping", link=link
        )
        if link is not None
        else ConcurrencyCap(settings.ping_max_in_flight, settings.ping_max_per_token, name="ping")
    )
    metrics.track_pings_in_flight(lambda: ping_cap.in_flight)

    def tokens_reload_failed(error: str) -> None:
        # Once per change of the file: the last good view stays in force meanwhile.
        get_logger("pingcalc.auth").warning("tokens_reload_failed", error=error)
        audit.emit("tokens_reload_failed", outcome="error", reason="malformed", error=error)

    return Services(
        settings=settings,
        tokens=TokenStore(settings.tokens_file, on_reload_failed=tokens_reload_failed),
        limiter=limiter,
        audit=audit,
        ping_cap=ping_cap,
        evaluator=build_evaluator(settings),
        pinger=pinger,
        ping_backend_reason=pinger.reason,
        ping_policy=TargetPolicy(settings.ping_allow, settings.ping_deny),
        resolver=select_resolver(
            settings.ping_resolver,
            timeout=settings.ping_resolve_timeout_seconds,
            max_in_flight=settings.ping_max_lookups,
        ),
        metrics=metrics,
    )


def build_evaluator(settings: Settings) -> Evaluator:
    """The calculator with the `calc_*` bounds (also what `bench/bench_calc.py` measures)."""
    return Evaluator(Bounds.from_mapping(settings.model_dump(), prefix="calc_"))
