"""Liveness and readiness probes: no authentication, no rate limit, cheap."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pingcalc.api.deps import ServicesDep
from pingcalc.services import Services

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: tokens loaded and limiter storage reachable")
async def readyz(services: ServicesDep) -> JSONResponse:
    services.tokens.refresh()
    checks = {
        "tokens": "ok" if len(services.tokens) > 0 else "no tokens configured",
        "rate_limit_storage": "ok",
        "audit": _audit_check(services),
    }
    # No ping backend: calculate still works, so ready but degraded, with the reason and fix.
    ping = services.pinger.status()
    checks["ping"] = "ok" if ping.available else f"unavailable: {ping.reason}; fix: {ping.fix}"
    if services.limiter.shared and not await services.limiter.reachable():
        checks["rate_limit_storage"] = "unreachable; limiting per process (degraded)"
    # Fail-open keeps serving without the audit file: ready, but reported as degraded.
    ready = checks["tokens"] == "ok" and services.audit.available
    degraded = any(checks[name] != "ok" for name in ("rate_limit_storage", "audit", "ping"))
    status = "ready" if ready and not degraded else ("degraded" if ready else "not ready")
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)


def _audit_check(services: Services) -> str:
    # probe() retries a failing audit file, so readiness returns once it is writable again.
    if services.audit.probe():
        return "ok"
    policy = services.audit.on_failure
    if policy == "open":
        return "audit file cannot be written; fail-open: requests proceed (degraded)"
    return "audit file cannot be written; fail-closed: ping and calculate answer 503"
