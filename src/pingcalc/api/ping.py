"""`POST /api/v1/ping`: admit, plan and check the target, take a slot, resolve once and
judge, send the echoes.

Each step refuses at once with its own status, before any echo is sent: admission (401, 403,
429, 503) before the body is read; 415 for a body that is not JSON; 422 for a malformed body,
target, count or family; 403 for an IP address the policy refuses; 429 (this token) or 503
(the server) with `Retry-After` when the concurrency caps are full; then, for a host name,
403 if any of its addresses is refused (naming the address and why), 404, 504, 503, 429 or
502 when it has no address, its lookup times out, too many lookups are in flight (in the
process, or of this token's share), or the resolver fails, and 422 when it has more
addresses than a name may have; 503 when this server cannot ping. No reply from the target
is a normal 200 result with 100 % loss.

The slot is taken before the lookup: a token at its concurrency cap costs no DNS query, and
a token's lookups in flight are bounded by its cap as well as by the resolver's share.

Live replies: with `Accept: application/x-ndjson` the answer is one JSON line per echo reply
or timeout as it happens, then a line equal to the ordinary JSON result. The status line goes
out with the first event, so anything refused before an echo (a backend that cannot ping
included) is still an ordinary problem response with its own status.

The concurrency slot is held for the whole exchange, stream included, and the exchange runs
under `Exchange.unless_disconnected`: a client that goes away cancels the echoes and frees
its slot at once.

Audit: one record per request, written before the answer: `ping` (outcome `success`, or
`cancelled` after a disconnect), `ping_rejected`, `capacity_rejected` or `ping_failed` (or
the gate's own refusal). A live answer also writes `ping_started` before the first echo, so
nothing is shown to a client unless the request is on record. Records of a host name carry
the name and the address. If a record cannot be written the answer is 503
`audit-unavailable`; if the final record of a stream whose lines have already gone out
fails, the final line is that problem document instead of the result, and the stream ends
(a client tells them apart by `status`, which only a problem has).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from pydantic import ValidationError

from pingcalc.api.admission import admit, audit_unavailable, require_json, unrecorded
from pingcalc.api.exchange import ClientDisconnected, Exchange
from pingcalc.api.ping_refusals import refusal
from pingcalc.api.ping_schema import NDJSON_MEDIA_TYPE, OPERATION, PingRequest
from pingcalc.api.problems import Problem, invalid_body
from pingcalc.api.routing import Route
from pingcalc.audit import Auditor, clip
from pingcalc.ping import (
    BackendUnavailableError,
    Destination,
    HostName,
    PingError,
    PingEvent,
    PingPlan,
    PingResult,
    Reply,
    check_target,
    resolve_name,
)
from pingcalc.services import Services
from pingcalc.throttle import CapacityError

PATH = "/api/v1/ping"
NDJSON = NDJSON_MEDIA_TYPE.encode()
# How much of a refused target goes into the audit event (the JSON log escapes the rest).
AUDIT_TARGET_CHARS = 64


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _destination_fields(destination: Destination) -> dict[str, Any]:
    """The audit fields of a checked destination: the address pinged, and the name if any."""
    fields = destination.to_dict()
    fields["target"] = fields.pop("address")
    return fields


def _reject(audit: Auditor, reason: str, problem: Problem, **fields: Any) -> Problem:
    """Record a refusal; its problem, or 503 when the record cannot be written."""
    if not audit.emit("ping_rejected", outcome="rejected", reason=reason, **fields):
        return audit_unavailable()
    return problem


def route(services: Services) -> Route:
    """The route, bound to `services`."""
    gate = services.gate
    audit = services.audit
    settings = services.settings
    policy = services.ping_policy
    resolver = services.resolver
    cap = services.ping_cap
    metrics = services.metrics
    parse = PingRequest.model_validate_json

    async def echoes(
        ex: Exchange,
        plan: PingPlan,
        destination: Destination,
        context: dict[str, Any],
        live: bool,
        seen: list[PingEvent],
    ) -> None:
        """Send the echoes and answer: the result, or each event then the result (`live`)."""
        pinger = services.pinger
        started = False
        result: PingResult | None = None
        # A live answer starts before the final record can be written, so the stream first
        # writes a `ping_started` record: no echo goes out, and no reply is shown, unless the
        # request is on record (fail-closed from the very first action).
        if live and not audit.emit("ping_started", outcome="started", **context):
            raise unrecorded(audit, "ping_rejected", context)
        events = plan.stream(pinger, destination)
        try:
            async with contextlib.aclosing(events):
                async for item in events:
                    if isinstance(item, PingResult):
                        result = item
                        break
                    seen.append(item)
                    if isinstance(item, Reply):
                        metrics.observe_ping_rtt(item.rtt_ms / 1000)
                    if live:
                        if not started:
                            await ex.start_stream(200, NDJSON)
                            started = True
                        await ex.send_part(_json(item.to_dict()) + b"\n")
        except BackendUnavailableError as exc:
            # The operator's fix (sysctl, iputils-ping; no path), or "IPv6 is not available";
            # the cause itself goes only to the audit record.
            failed = Problem(503, exc.detail, kind="ping-unavailable")
            if not audit.emit(
                "ping_failed",
                outcome="error",
                reason="backend_unavailable",
                backend=pinger.name,
                error=str(exc),
                **context,
            ):
                failed = audit_unavailable()
            if not started:
                raise failed from None
            ex.reason = "backend_unavailable"
            await ex.send_part(failed.body(ex.request_id) + b"\n", last=True)
            return
        if result is None:  # every stream ends with its result; a backend bug otherwise
            raise RuntimeError("the ping stream ended without a result")
        recorded = audit.emit(
            "ping",
            outcome="success",
            sent=result.sent,
            received=result.received,
            loss_percent=result.loss_percent,
            backend=result.backend,
            **context,
        )
        if not live:
            if not recorded:
                raise unrecorded(audit, "ping_rejected", context)
            await ex.respond(200, _json(result.to_dict()))
            return
        if not started:
            await ex.start_stream(200, NDJSON)
        if recorded:
            await ex.send_part(_json(result.to_dict()) + b"\n", last=True)
            return
        # The lines already sent cannot be taken back: the last line says the result is void.
        ex.reason = "audit_unavailable"
        await ex.send_part(audit_unavailable().body(ex.request_id) + b"\n", last=True)

    async def destination_of(
        target: Destination | HostName, token: str, plan: PingPlan, context: dict[str, Any]
    ) -> Destination:
        """The checked destination: a name is resolved (a lookup slot of `token`) and judged."""
        if isinstance(target, Destination):
            return target
        try:
            destination = await resolve_name(
                target, policy=policy, resolver=resolver, family=plan.family, owner=token
            )
        except PingError as exc:
            reason, problem, fields = refusal(exc)
            raise _reject(audit, reason, problem, **context, **fields) from None
        context.update(_destination_fields(destination))
        return destination

    async def exchange(
        ex: Exchange,
        token: str,
        plan: PingPlan,
        target: Destination | HostName,
        context: dict[str, Any],
        seen: list[PingEvent],
    ) -> None:
        """Hold a concurrency slot around the lookup and the echoes; refuse at once when the
        caps are full."""
        try:
            async with cap.hold(token):
                destination = await destination_of(target, token, plan, context)
                await echoes(ex, plan, destination, context, ex.accepts(NDJSON), seen)
        except CapacityError as exc:
            if not audit.emit(
                "capacity_rejected", outcome="rejected", reason=exc.reason, **context
            ):
                raise audit_unavailable() from None
            per_token = "per_token" in exc.reason
            raise Problem(
                429 if per_token else 503,
                str(exc),
                kind="rate-limited" if per_token else "capacity",
                reason=exc.reason,
                retry_after=exc.retry_after,
            ) from None

    async def ping(ex: Exchange) -> None:
        record = await admit(ex, gate, audit, "ping")
        require_json(ex)
        raw = await ex.read_body()
        context: dict[str, Any] = ex.context()
        try:
            body = parse(raw)
        except ValidationError as exc:
            raise _reject(audit, "invalid_body", invalid_body(exc), **context) from None
        try:
            plan = PingPlan.from_settings(settings, count=body.count, family=body.family)
            target = check_target(body.target, policy=policy, family=plan.family)
        except PingError as exc:
            reason, problem, fields = refusal(exc)
            raise _reject(
                audit,
                reason,
                problem,
                target=clip(body.target, AUDIT_TARGET_CHARS),
                **context,
                **fields,
            ) from None
        if isinstance(target, Destination):
            context.update(_destination_fields(target))
        else:  # until it is resolved, records name the target as sent
            context["target"] = clip(body.target, AUDIT_TARGET_CHARS)
        seen: list[PingEvent] = []
        try:
            await ex.unless_disconnected(exchange(ex, record.name, plan, target, context, seen))
        except ClientDisconnected:
            # Nobody is left to answer, so a failed write changes nothing here; the auditor
            # has already reported it to the operator.
            audit.emit(
                "ping",
                outcome="cancelled",
                reason="client_disconnected",
                reported=len(seen),  # echoes whose reply or timeout came before the end
                received=sum(isinstance(e, Reply) for e in seen),
                backend=services.pinger.name,
                **context,
            )
            raise

    return Route("POST", PATH, ping, OPERATION)
