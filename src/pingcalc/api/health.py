"""Liveness and readiness probes: no authentication, no rate limit, cheap."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pingcalc.api.deps import ServicesDep

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
        "audit": "ok" if services.audit.healthy else "audit sink is failing",
    }
    if services.limiter.shared and not await services.limiter.reachable():
        checks["rate_limit_storage"] = "unreachable; limiting per process (degraded)"
    ready = checks["tokens"] == "ok" and checks["audit"] == "ok"
    degraded = checks["rate_limit_storage"] != "ok"
    status = "ready" if ready and not degraded else ("degraded" if ready else "not ready")
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)
