"""The application factory: `create_app(settings)` wires the edge, the routes and the services."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterable

from pingcalc import __version__
from pingcalc.api import calculate, docs, health, ping, web
from pingcalc.api import metrics as metrics_api
from pingcalc.api.edge import Edge
from pingcalc.api.exchange import Exchange
from pingcalc.api.forwarded import TrustedProxies
from pingcalc.api.observers import access_line, metrics_observer
from pingcalc.api.openapi import build_document, render
from pingcalc.api.routing import Route, Router
from pingcalc.audit import run_checkpoints
from pingcalc.calc import syntax_reference
from pingcalc.ping.notice import announce
from pingcalc.services import Services, build_services
from pingcalc.settings import Settings, load_settings
from pingcalc.throttle import redact_uri

SUMMARY = "Ping validated targets and evaluate arithmetic safely, over an authenticated API."
DESCRIPTION = (
    "Every route but the probes, this document and the page needs `Authorization: Bearer "
    "<token>` with the operation's scope. Every error is an RFC 9457 problem "
    "(`application/problem+json`) carrying the request id."
)


def api_routes(services: Services) -> list[Route]:
    """The documented operations, bound to `services`."""
    return [
        *health.routes(services),
        calculate.route(services),
        ping.route(services),
        metrics_api.route(services),
    ]


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    extra_routes: Iterable[Route] = (),
) -> Edge:
    """Build an isolated application; tests pass their own settings, services or routes."""
    settings = settings or (services.settings if services else load_settings())
    services = services or build_services(settings)
    routes = [*api_routes(services), *extra_routes]
    document = render(
        build_document(
            routes, title="pingcalc", version=__version__, summary=SUMMARY, description=DESCRIPTION
        )
    )

    async def openapi(ex: Exchange) -> None:
        await ex.respond(200, document)

    routes += [
        Route("GET", "/openapi.json", openapi),
        *web.routes(syntax_reference(services.evaluator.bounds)),
        *docs.ROUTES,
    ]

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        # SIGHUP re-reads the tokens file at once (it is also re-read when it changes).
        # Only possible in the main thread; test clients run the app elsewhere.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, lambda: services.tokens.refresh(force=True))
        services.audit.emit("server_start", outcome="success", **security_summary(settings))
        announce(services.pinger.status())  # a WARNING with the fix when no backend works
        checkpoints = asyncio.create_task(run_checkpoints(services.audit))
        try:
            yield
        finally:
            checkpoints.cancel()
            services.audit.emit("server_stop", outcome="success")
            # close() checkpoints and ships: off the loop, like the periodic ones.
            await asyncio.to_thread(services.audit.close)

    observers = [metrics_observer(services.metrics)]
    if settings.access_log:
        observers.append(access_line)
    return Edge(
        Router(routes),
        gate=services.gate,
        proxies=TrustedProxies(settings.forwarded_allow_ips),
        max_body_bytes=settings.max_body_bytes,
        observers=observers,
        penalty_delay=settings.penalty_delay_seconds,
        lifespan=lifespan,
    )


def security_summary(settings: Settings) -> dict[str, object]:
    """The effective security settings, recorded when the server starts."""
    return {
        "host": settings.host,
        "port": settings.port,
        "tokens_file": str(settings.tokens_file),
        "rate_limit_enabled": settings.rate_limit_enabled,
        "rate_limit_storage": redact_uri(settings.rate_limit_storage),
        "rate_limit_per_ip": settings.rate_limit_per_ip,
        "rate_limit_per_token": settings.rate_limit_per_token,
        "auth_failures_per_ip": settings.auth_failures_per_ip,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "connect_allow_ips": settings.connect_allow_ips,
        "max_body_bytes": settings.max_body_bytes,
        "max_header_bytes": settings.max_header_bytes,
        "request_read_timeout_seconds": settings.request_read_timeout_seconds,
        "keepalive_timeout_seconds": settings.keepalive_timeout_seconds,
        "max_connections": settings.max_connections,
        "max_connections_per_client": settings.max_connections_per_client,
        "ping_max_in_flight": settings.ping_max_in_flight,
        "ping_max_per_token": settings.ping_max_per_token,
        "audit_file": str(settings.audit_file) if settings.audit_file else None,
        "audit_on_failure": settings.audit_on_failure,
    }


def app_from_environment() -> Edge:
    """Factory for `uvicorn --factory` (multi-worker serve): settings come from the environment."""
    return create_app(load_settings())
