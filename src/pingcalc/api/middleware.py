"""One pure ASGI middleware for request hygiene (no BaseHTTPMiddleware: it costs ~2x).

For every HTTP request it: assigns a request id (a client's ``X-Request-ID`` is kept only if
it is short and plain, so it cannot inject headers or log lines); refuses bodies over the
limit with 413 before reading them; adds the security headers; turns any unexpected
exception into a generic 500 problem (details only in the log); writes one access event.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pingcalc.api.problems import PROBLEM_MEDIA_TYPE, problem_body
from pingcalc.auth import MAX_PRESENTED_LENGTH, hash_token
from pingcalc.limits import PenaltyBox, token_box_key
from pingcalc.logs import get_logger, write_event

error_log = get_logger("pingcalc.error")

# Printable token characters only, bounded: anything else is replaced by a fresh id.
REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:-]{1,64}")

EDGE_REFUSALS = {
    "ip_rate_limit": "too many requests from this address; retry later",
    # A message, not a password: the key merely contains the word "token".
    "token_rate_limit": "this token is over its rate limit; retry later",  # nosec B105
}

# Most refused requests held at once by the tarpit; past it, refusals are answered at once.
TARPIT_MAX_HELD = 1000

# Probes are never refused at the edge: orchestrators must see the truth.
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})

API_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
)
_API_HEADER_NAMES = frozenset(name for name, _ in API_HEADERS)


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit.

    It is an HTTPException so that FastAPI's body parsing re-raises it instead of
    turning it into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class RequestGuard:
    """Request id, body limit, security headers, last-resort 500, access log."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        access_log: bool = True,
        observer: Callable[[Scope, int, float], None] | None = None,
        penalty_box: PenaltyBox | None = None,
        penalty_delay: float = 0.0,
    ) -> None:
        self.app = app
        self.penalty_delay = penalty_delay
        self._tarpitted = 0
        # Addresses over their per-IP limit are answered 429 here, before any routing.
        self.penalty_box = penalty_box
        self.max_body_bytes = max_body_bytes
        self.log_access = access_log
        # Told (scope, status, seconds) of every request: metrics without another layer.
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        request_id = _request_id(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        rid = request_id.encode()
        response_started = False
        status = 500
        limit = self.max_body_bytes

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started, status
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", ())
                    if k != b"server" and k != b"x-request-id"
                ]
                present = {k for k, _ in headers} & _API_HEADER_NAMES
                headers.extend(h for h in API_HEADERS if h[0] not in present)
                headers.append((b"x-request-id", rid))
                message["headers"] = headers
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            declared = _content_length(scope)
            blocked, reason = self._blocked_for(scope)
            if blocked:
                status = 429
                await self._tarpit()
                await _send_problem(
                    send_with_headers,
                    429,
                    EDGE_REFUSALS[reason],
                    request_id,
                    "rate-limited",
                    retry_after=blocked,
                    reason=reason,
                )
            elif declared is not None and declared > limit:
                status = 413
                await _send_problem(
                    send_with_headers, 413, BodyTooLarge(limit).detail, request_id, "body-too-large"
                )
            else:
                await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge as exc:
            status = 413
            if not response_started:
                await _send_problem(
                    send_with_headers, 413, exc.detail, request_id, "body-too-large"
                )
        except Exception:  # the last resort: a generic 500, details only in the log
            status = 500
            error_log.exception("unhandled_exception", request_id=request_id, path=scope["path"])
            if not response_started:
                await _send_problem(
                    send_with_headers,
                    500,
                    f"an internal error occurred; quote request id {request_id} to the operator",
                    request_id,
                    "internal",
                )
        finally:
            elapsed = time.perf_counter() - started_at
            if self.observer is not None:
                self.observer(scope, status, elapsed)
            if self.log_access:
                client = scope.get("client")
                write_event(
                    "access",
                    request_id=request_id,
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                    client_ip=client[0] if client else None,
                    token=state.get("token_name"),
                )

    async def _tarpit(self) -> None:
        """Hold a refused request briefly before answering: a keep-alive flooder waits for each
        answer, so its request rate drops to about one per `penalty_delay` per connection and
        the event loop stays free for everyone else. Bounded, so it cannot pile up coroutines."""
        if self.penalty_delay <= 0 or self._tarpitted >= TARPIT_MAX_HELD:
            return
        self._tarpitted += 1
        # Jittered (0.5x-1.5x) so that held flooders are not all released in the same instant
        # and cannot hit the loop in synchronised bursts.
        delay = self.penalty_delay * (0.5 + random.random())  # noqa: S311  # nosec B311
        try:
            await asyncio.sleep(delay)
        finally:
            self._tarpitted -= 1

    def _blocked_for(self, scope: Scope) -> tuple[int, str]:
        """(Retry-After, reason) when the address or the bearer token is in the penalty box."""
        box = self.penalty_box
        if box is None or not box or scope["path"] in HEALTH_PATHS:
            return 0, ""
        client = scope.get("client")
        if client and (wait := box.retry_after(client[0])):
            return wait, "ip_rate_limit"
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and len(token) <= MAX_PRESENTED_LENGTH:
                    wait = box.retry_after(token_box_key(hash_token(token.strip())))
                    if wait:
                        return wait, "token_rate_limit"
                break
        return 0, ""


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if REQUEST_ID_PATTERN.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                # A malformed length is answered as too large rather than trusted.
                return 1 << 62
    return None


async def _send_problem(
    send: Send,
    status: int,
    detail: str,
    request_id: str,
    kind: str,
    retry_after: int = 0,
    reason: str = "",
) -> None:
    extra: dict[str, Any] = {"reason": reason, "retry_after": retry_after} if retry_after else {}
    body = problem_body(status, detail, kind=kind, request_id=request_id, **extra)
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    else:
        # The body may be unread (413) or the app broken (500): do not reuse the connection.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
