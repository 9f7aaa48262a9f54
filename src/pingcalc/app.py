"""The application factory: `create_app(settings)` wires routers, middleware and services."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pingcalc import __version__
from pingcalc.api import calculate, docs, health, ping, web
from pingcalc.api import metrics as metrics_api
from pingcalc.api.middleware import RequestGuard
from pingcalc.api.problems import install_problem_handlers
from pingcalc.ping.notice import announce
from pingcalc.services import Services, build_services
from pingcalc.settings import Settings, load_settings


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build an isolated application; tests pass their own settings or services."""
    settings = settings or (services.settings if services else load_settings())
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        loop = asyncio.get_running_loop()
        # SIGHUP re-reads the tokens file at once (it is also re-read when it changes).
        # Only possible in the main thread; test clients run the app elsewhere.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, services.tokens.load)
        services.audit.emit("server_start", outcome="success", **security_summary(settings))
        announce(services.pinger.status())  # a WARNING with the fix when no backend works
        try:
            yield
        finally:
            services.audit.emit("server_stop", outcome="success")
            services.audit.close()

    app = FastAPI(
        lifespan=lifespan,
        title="pingcalc",
        version=__version__,
        summary="Ping validated targets and evaluate arithmetic safely, over an authenticated API.",
        # No Swagger UI or ReDoc: both load scripts from a CDN; api/docs.py serves /docs.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.services = services
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(calculate.router)
    app.include_router(ping.router)
    app.include_router(web.router)
    app.include_router(docs.router)  # /docs: the API reference, no CDN
    app.include_router(metrics_api.router)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        access_log=settings.access_log,
        observer=services.metrics.observe_request,
        penalty_box=services.penalty_box,
        penalty_delay=settings.penalty_delay_seconds,
    )
    return app


def security_summary(settings: Settings) -> dict[str, object]:
    """The effective security settings, recorded when the server starts."""
    from pingcalc.limits import redact_uri

    return {
        "host": settings.host,
        "port": settings.port,
        "tokens_file": str(settings.tokens_file),
        "rate_limit_enabled": settings.rate_limit_enabled,
        "rate_limit_storage": redact_uri(settings.rate_limit_storage),
        "rate_limit_per_ip": settings.rate_limit_per_ip,
        "rate_limit_per_token": settings.rate_limit_per_token,
        "auth_failures_per_ip": settings.auth_failures_per_ip,
        "max_body_bytes": settings.max_body_bytes,
        "ping_max_in_flight": settings.ping_max_in_flight,
        "ping_max_per_token": settings.ping_max_per_token,
        "audit_file": str(settings.audit_file) if settings.audit_file else None,
        "audit_on_failure": settings.audit_on_failure,
    }


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` (multi-worker serve): settings come from the environment."""
    return create_app(load_settings())
