"""`POST /api/v1/ping`: parse the target, apply the policy, take a slot, send the echoes.

Each step refuses at once with its own status, before anything is sent: 415 for a body that
is not JSON, 422 for a malformed target or count, 403 for a target the policy refuses, 429
(this token) or 503 (the server) with `Retry-After` when the concurrency caps are full. No
reply from the target is a normal 200 result with 100 % loss.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from pingcalc.api.deps import ServicesDep, client_ip, json_body, require
from pingcalc.api.problems import Problem
from pingcalc.auth import TokenRecord
from pingcalc.limits import CapacityError
from pingcalc.ping import (
    BackendUnavailableError,
    TargetDeniedError,
    TargetSyntaxError,
    deadline_for,
    parse_target,
)

router = APIRouter(prefix="/api/v1", tags=["ping"])

# How much of a rejected target goes into the audit event (the JSON log escapes the rest).
AUDIT_TARGET_CHARS = 64


class PingRequest(BaseModel):
    """The body of a ping request; unknown fields are refused (no silent options)."""

    model_config = ConfigDict(extra="forbid")

    target: StrictStr = Field(
        description="IPv4 dotted-quad or IPv6 address; no host names", examples=["127.0.0.1"]
    )
    count: StrictInt | None = Field(
        default=None, ge=1, le=5, description="echo requests to send (default 3)"
    )


class RttModel(BaseModel):
    min: float
    avg: float
    max: float
    stddev: float


class ReplyModel(BaseModel):
    seq: int
    rtt_ms: float


class PingResponse(BaseModel):
    """The documented shape of a result (the handler serialises `PingResult.to_dict()`)."""

    target: str
    family: int
    sent: int
    received: int
    loss_percent: float
    rtt_ms: RttModel | None
    replies: list[ReplyModel]
    backend: str


@router.post(
    "/ping",
    summary="Send ICMP echo requests to a validated address",
    response_model=PingResponse,
    responses={
        403: {"description": "the target is not allowed, or the token lacks the ping scope"},
        415: {"description": "the body is not JSON"},
        422: {"description": "the target or count is invalid"},
        429: {"description": "this token has too many pings in flight"},
        503: {"description": "the server has too many pings in flight, or cannot ping"},
    },
)
async def ping(
    request: Request,
    body: PingRequest,
    services: ServicesDep,
    record: Annotated[TokenRecord, Depends(require("ping"))],
    _json: Annotated[None, Depends(json_body)],
) -> JSONResponse:
    """Ping `target` `count` times; the result lists every reply."""
    settings = services.settings
    context: dict[str, Any] = {
        "request_id": request.scope.get("state", {}).get("request_id"),
        "client_ip": client_ip(request),
        "token": record.name,
    }

    def reject(reason: str, problem: Problem, **fields: Any) -> Problem:
        services.audit.emit(
            "ping_rejected",
            outcome="rejected",
            reason=reason,
            target=body.target[:AUDIT_TARGET_CHARS],
            **context,
            **fields,
        )
        return problem

    count = settings.ping_default_count if body.count is None else body.count
    if count > settings.ping_max_count:
        raise reject(
            "count_too_large",
            Problem(
                422,
                f"count: at most {settings.ping_max_count} echo requests per ping",
                kind="validation",
                title="Invalid request",
            ),
        )
    try:
        address = services.ping_policy.check(parse_target(body.target))
    except TargetSyntaxError as exc:
        raise reject(
            "invalid_target",
            Problem(422, str(exc), kind="invalid-target", title="Invalid target"),
        ) from None
    except TargetDeniedError as exc:
        raise reject(
            "target_denied",
            Problem(403, str(exc), kind="target-denied", title="Target not allowed"),
            category=exc.category,
        ) from None

    timeout = settings.ping_timeout_seconds
    interval = settings.ping_interval_seconds
    try:
        async with services.ping_cap.hold(record.name):
            result = await services.pinger.ping(
                address,
                count=count,
                timeout=timeout,
                interval=interval,
                deadline=deadline_for(count, timeout=timeout, interval=interval),
            )
    except CapacityError as exc:
        services.audit.emit(
            "capacity_rejected",
            outcome="rejected",
            reason=exc.reason,
            target=str(address),
            **context,
        )
        per_token = "per_token" in exc.reason
        raise Problem(
            429 if per_token else 503,
            str(exc),
            kind="rate-limited" if per_token else "capacity",
            headers={"Retry-After": str(exc.retry_after)},
            reason=exc.reason,
            retry_after=exc.retry_after,
        ) from None
    except BackendUnavailableError as exc:
        services.audit.emit(
            "ping_failed",
            outcome="error",
            reason="backend_unavailable",
            target=str(address),
            backend=services.pinger.name,
            error=str(exc),
            **context,
        )
        # The cause and the operator's fix (sysctl, iputils-ping; no path) or "no IPv6 here".
        raise Problem(503, exc.detail, kind="ping-unavailable") from None

    services.audit.emit(
        "ping",
        outcome="success",
        target=result.target,
        sent=result.sent,
        received=result.received,
        loss_percent=result.loss_percent,
        backend=result.backend,
        **context,
    )
    for reply in result.replies:
        services.metrics.observe_ping_rtt(reply.rtt_ms / 1000)
    return JSONResponse(result.to_dict())
