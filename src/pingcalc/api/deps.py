"""FastAPI dependencies: the service container and bearer-token authentication."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from pingcalc.api.problems import Problem
from pingcalc.auth import TokenRecord
from pingcalc.limits import token_box_key
from pingcalc.services import Services
from pingcalc.settings import Scope


async def get_services(request: Request) -> Services:
    """The services built by `create_app` for this application instance."""
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread
    # hand-off on every request that cost more than the rest of this dependency (bench/).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def client_ip(request: Request) -> str:
    """The peer address (uvicorn applies X-Forwarded-For only from trusted proxies)."""
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return value.strip()


# Scopes whose every use is audited, and the event that records a refusal for each. With
# PINGCALC_AUDIT_ON_FAILURE=closed these answer 503 while the audit file cannot be written:
# an action that cannot be recorded is not performed (repudiation).
AUDITED_SCOPES: dict[str, str] = {"ping": "ping_rejected", "calculate": "calculation_rejected"}
# Seconds a client is told to wait while the audit trail is down.
AUDIT_RETRY_AFTER = 5


def audit_unavailable() -> Problem:
    """The 503 answered while the audit file cannot be written and the policy is fail-closed."""
    return Problem(
        503,
        "the audit trail cannot be written, so audited actions are refused until it can; "
        "retry later (the operator sees the cause in the server log)",
        kind="audit-unavailable",
        title="Audit trail unavailable",
        headers={"Retry-After": str(AUDIT_RETRY_AFTER)},
        retry_after=AUDIT_RETRY_AFTER,
    )


def require_json(request: Request) -> None:
    """Refuse a body that does not say it is JSON (415) before anything parses it."""
    header = request.headers.get("content-type", "")
    media_type = header.partition(";")[0].strip().lower()
    maintype, _, subtype = media_type.partition("/")
    if maintype != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise Problem(
            415,
            "send the request body as JSON with 'Content-Type: application/json'",
            kind="unsupported-media-type",
            headers={"Accept-Post": "application/json"},
        )


async def json_body(request: Request) -> None:
    """Dependency form of `require_json`, run after authentication."""
    require_json(request)


def _too_many(detail: str, retry_after: int, reason: str) -> Problem:
    return Problem(
        429,
        detail,
        kind="rate-limited",
        headers={"Retry-After": str(retry_after)},
        reason=reason,
        retry_after=retry_after,
    )


def require(scope: Scope) -> Callable[..., Awaitable[TokenRecord]]:
    """A dependency that admits only a valid bearer token carrying `scope`."""

    async def dependency(request: Request) -> TokenRecord:
        # Services read directly, not as a nested Depends: FastAPI resolves each nested
        # dependency per request, a measurable share of the hot path (bench/).
        services: Services = request.app.state.services
        settings = services.settings
        limiter = services.limiter
        audit = services.audit
        ip = client_ip(request)
        request_id = request.scope.get("state", {}).get("request_id")

        def refused(event: str, reason: str, outcome: str = "denied", **fields: object) -> None:
            """Audit one refusal of this request, with the fields every refusal carries."""
            audit.emit(
                event,
                request_id=request_id,
                client_ip=ip,
                outcome=outcome,
                reason=reason,
                path=request.url.path,
                **fields,
            )

        # Throttles before the token is even looked at, so guessing costs the guesser.
        for rate, key, reason in (
            (settings.rate_limit_per_ip, "ip", "ip_rate_limit"),
            (settings.auth_failures_per_ip, "authfail", "auth_failure_limit"),
        ):
            decision = (
                await limiter.hit(rate, key, ip)
                if key == "ip"
                else await limiter.test(rate, key, ip)
            )
            if not decision.allowed:
                if key == "ip":
                    # Until its window frees, the address is refused at the edge (middleware),
                    # cheaply and without one audit record per flooding request.
                    services.penalty_box.add(ip, decision.retry_after)
                refused("rate_limited", reason, retry_after=decision.retry_after)
                raise _too_many(
                    "too many requests from this address; retry later",
                    decision.retry_after,
                    reason,
                )
        presented = _bearer(request)
        record = services.tokens.authenticate(presented) if presented else None
        if record is None:
            await limiter.hit(settings.auth_failures_per_ip, "authfail", ip)
            reason = "missing_token" if presented is None else "invalid_token"
            refused("auth_failure", reason)
            challenge = 'Bearer realm="pingcalc"'
            if presented is not None:
                challenge += ', error="invalid_token"'
            raise Problem(
                401,
                "a valid bearer token is required: send 'Authorization: Bearer <token>'"
                if presented is None
                else "the bearer token is not valid (unknown, revoked or malformed)",
                kind="unauthorized",
                headers={"WWW-Authenticate": challenge},
            )
        request.scope.setdefault("state", {})["token_name"] = record.name
        if scope not in record.scopes:
            refused("authz_denied", "missing_scope", token=record.name, scope=scope)
            raise Problem(
                403,
                f"token {record.name!r} lacks the {scope!r} scope",
                kind="forbidden",
                headers={
                    "WWW-Authenticate": (
                        f'Bearer realm="pingcalc", error="insufficient_scope", scope="{scope}"'
                    )
                },
            )
        if scope in AUDITED_SCOPES and not audit.available and not audit.probe():
            refused(AUDITED_SCOPES[scope], "audit_unavailable", "rejected", token=record.name)
            raise audit_unavailable()
        decision = await limiter.hit(settings.rate_limit_per_token, "token", record.name)
        if not decision.allowed:
            # Until the window frees, this token is refused at the edge, like a flooding address.
            services.penalty_box.add(token_box_key(record.sha256), decision.retry_after)
            refused("rate_limited", "token_rate_limit", token=record.name)
            raise _too_many(
                f"token {record.name!r} is over its rate limit ({settings.rate_limit_per_token})",
                decision.retry_after,
                "token_rate_limit",
            )
        return record

    return dependency
