"""Liveness and readiness probes: no authentication, no rate limit, cheap."""

from __future__ import annotations

import json

from pydantic import BaseModel

from pingcalc.api.exchange import Exchange
from pingcalc.api.openapi import Answer, Operation
from pingcalc.api.routing import Route
from pingcalc.services import Services

HEALTHY = b'{"status":"ok"}'


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    """`ready`, `degraded` (serving, with a named problem) or `not ready`, and each check."""

    status: str
    checks: dict[str, str]


LIVENESS = Operation(
    summary="Liveness: the process answers",
    tags=("health",),
    answers={200: Answer("The process is alive", Liveness)},
)
READINESS = Operation(
    summary="Readiness: tokens loaded, limiter storage and audit trail usable",
    tags=("health",),
    answers={
        200: Answer("Ready, or degraded (still serving; `checks` says what is wrong)", Readiness),
        503: Answer("Not ready: `checks` says why", Readiness),
    },
)


async def healthz(ex: Exchange) -> None:
    await ex.respond(200, HEALTHY)


def _audit_check(services: Services) -> str:
    # probe() retries a failing audit file, so readiness returns once it is writable again.
    if services.audit.probe():
        return "ok"
    if services.audit.on_failure == "open":
        return "audit file cannot be written; fail-open: requests proceed (degraded)"
    return "audit file cannot be written; fail-closed: ping and calculate answer 503"


def routes(services: Services) -> list[Route]:
    async def readyz(ex: Exchange) -> None:
        tokens = services.tokens
        tokens.refresh()
        checks = {
            "tokens": "ok" if len(tokens) > 0 else "no tokens configured",
            "rate_limit_storage": "ok",
            "audit": _audit_check(services),
        }
        if tokens.reload_error is not None:
            checks["tokens_file"] = (
                "the tokens file no longer parses; serving the last good view "
                f"({tokens.reload_error})"
            )
        # No ping backend: calculate still works, so ready but degraded, with reason and fix.
        ping = services.pinger.status()
        checks["ping"] = "ok" if ping.available else f"unavailable: {ping.reason}; fix: {ping.fix}"
        if services.limiter.shared and not await services.limiter.reachable():
            checks["rate_limit_storage"] = "unreachable; limiting per process (degraded)"
        # Fail-open keeps serving without the audit file: ready, but reported as degraded.
        ready = checks["tokens"] == "ok" and services.audit.available
        degraded = any(value != "ok" for key, value in checks.items() if key != "tokens")
        status = "ready" if ready and not degraded else ("degraded" if ready else "not ready")
        body = json.dumps({"status": status, "checks": checks}, separators=(",", ":"))
        await ex.respond(200 if ready else 503, body.encode())

    return [
        Route("GET", "/healthz", healthz, LIVENESS),
        Route("GET", "/readyz", readyz, READINESS),
    ]
