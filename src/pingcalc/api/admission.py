"""The routes' side of admission: ask the gate, record a refusal, answer it as a problem."""

from __future__ import annotations

from typing import Any

from pingcalc.api.edge import refusal_problem
from pingcalc.api.exchange import Exchange
from pingcalc.api.problems import Problem
from pingcalc.audit import Auditor
from pingcalc.auth import TokenRecord
from pingcalc.gate import AUDIT_RETRY_AFTER, Gate, Refusal
from pingcalc.settings import Scope


async def admit(ex: Exchange, gate: Gate, audit: Auditor, scope: Scope) -> TokenRecord:
    """The token record if the gate admits this request for `scope`; else raise its problem
    (after recording the refusal's audit event, when it has one)."""
    client = ex.client
    if client is None:  # the edge sets it before any route runs
        raise RuntimeError("admission before the edge identified the client")
    decision = await gate.admit(client, ex.presented, scope)
    if isinstance(decision, Refusal):
        if decision.event is not None:
            fields: dict[str, Any] = {"outcome": "denied", "reason": decision.reason}
            fields.update(ex.context())
            fields["path"] = ex.path
            fields.update(decision.audit)
            audit.emit(decision.event, **fields)
        raise refusal_problem(decision)
    ex.token = decision.name
    return decision


def require_json(ex: Exchange) -> None:
    """Refuse a body that does not say it is JSON (415) before anything parses it."""
    media_type = (ex.content_type or b"").partition(b";")[0].strip().lower()
    maintype, _, subtype = media_type.partition(b"/")
    if maintype != b"application" or not (subtype == b"json" or subtype.endswith(b"+json")):
        raise Problem(
            415,
            "send the request body as JSON with 'Content-Type: application/json'",
            kind="unsupported-media-type",
            headers={"Accept-Post": "application/json"},
        )


def audit_unavailable() -> Problem:
    """503 for an audited action whose record could not be written (fail-closed)."""
    return Problem(
        503,
        "the audit trail cannot be written, so audited actions are refused until it can; "
        "retry later (the operator sees the cause in the server log)",
        kind="audit-unavailable",
        title="Audit trail unavailable",
        reason="audit_unavailable",
        retry_after=AUDIT_RETRY_AFTER,
    )


def unrecorded(audit: Auditor, event: str, context: dict[str, Any]) -> Problem:
    """The 503 for an action whose record could not be written durably, once the streams that
    still work say so: the failed record named an outcome the client never got, so `event`
    (the action's refusal event) records the answer it really got."""
    audit.emit(event, outcome="rejected", reason="audit_unavailable", **context)
    return audit_unavailable()
