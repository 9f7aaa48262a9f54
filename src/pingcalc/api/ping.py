"""`POST /api/v1/ping`: admit, parse the target, apply the policy, take a slot, send the echoes.

Each step refuses at once with its own status, before anything is sent: admission (401, 403,
429, 503) before the body is read, 415 for a body that is not JSON, 422 for a malformed
target or count, 403 for a target the policy refuses, 429 (this token) or 503 (the server)
with `Retry-After` when the concurrency caps are full. No reply from the target is a normal
200 result with 100 % loss. The audit record is written before the answer.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from pingcalc.api.admission import admit, audit_unavailable, require_json
from pingcalc.api.exchange import Exchange
from pingcalc.api.openapi import (
    NOT_JSON,
    RATE_LIMITED,
    TOO_LARGE,
    UNAUTHORIZED,
    Answer,
    Operation,
    problem,
)
from pingcalc.api.problems import Problem, invalid_body
from pingcalc.api.routing import Route
from pingcalc.audit import clip
from pingcalc.ping import (
    BackendUnavailableError,
    TargetDeniedError,
    TargetSyntaxError,
    deadline_for,
    parse_target,
)
from pingcalc.services import Services
from pingcalc.throttle import CapacityError

PATH = "/api/v1/ping"
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
    """The result: every reply received, loss and round-trip statistics."""

    target: str
    family: int
    sent: int
    received: int
    loss_percent: float
    rtt_ms: RttModel | None
    replies: list[ReplyModel]
    backend: str


OPERATION = Operation(
    summary="Send ICMP echo requests to a validated address",
    tags=("ping",),
    description="Ping `target` `count` times; the result lists every reply. Loopback and "
    "global addresses only by default; the operator may allow internal ranges.",
    scope="ping",
    request=PingRequest,
    answers={
        200: Answer("The replies, loss and round-trip statistics", PingResponse),
        400: problem("A trusted proxy's `X-Forwarded-For` names no client address"),
        401: UNAUTHORIZED,
        403: problem("The target is not allowed, or the token lacks the `ping` scope"),
        413: TOO_LARGE,
        415: NOT_JSON,
        422: problem("The target or count is invalid"),
        429: RATE_LIMITED,
        503: problem(
            "The server has too many pings in flight, cannot ping, or cannot write the audit trail"
        ),
    },
)


def route(services: Services) -> Route:
    """The route, bound to `services`."""
    gate = services.gate
    audit = services.audit
    settings = services.settings
    policy = services.ping_policy
    cap = services.ping_cap
    metrics = services.metrics

    async def ping(ex: Exchange) -> None:
        record = await admit(ex, gate, audit, "ping")
        require_json(ex)
        try:
            body = PingRequest.model_validate_json(await ex.read_body())
        except ValidationError as exc:
            raise invalid_body(exc) from None
        context: dict[str, Any] = ex.context()

        def reject(reason: str, problem: Problem, **fields: Any) -> Problem:
            if not audit.emit(
                "ping_rejected",
                outcome="rejected",
                reason=reason,
                target=clip(body.target, AUDIT_TARGET_CHARS),
                **context,
                **fields,
            ):
                return audit_unavailable()
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
            address = policy.check(parse_target(body.target))
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
        pinger = services.pinger
        try:
            async with cap.hold(record.name):
                result = await pinger.ping(
                    address,
                    count=count,
                    timeout=timeout,
                    interval=interval,
                    deadline=deadline_for(count, timeout=timeout, interval=interval),
                )
        except CapacityError as exc:
            audit.emit(
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
            audit.emit(
                "ping_failed",
                outcome="error",
                reason="backend_unavailable",
                target=str(address),
                backend=pinger.name,
                error=str(exc),
                **context,
            )
            # The cause (sysctl, missing binary) is for the operator's log, not for clients.
            raise Problem(
                503, "this server cannot send pings right now", kind="ping-unavailable"
            ) from None

        if not audit.emit(
            "ping",
            outcome="success",
            target=result.target,
            sent=result.sent,
            received=result.received,
            loss_percent=result.loss_percent,
            backend=result.backend,
            **context,
        ):
            raise audit_unavailable()
        for reply in result.replies:
            metrics.observe_ping_rtt(reply.rtt_ms / 1000)
        await ex.respond(200, json.dumps(result.to_dict(), separators=(",", ":")).encode())

    return Route("POST", PATH, ping, OPERATION)
