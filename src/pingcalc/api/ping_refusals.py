"""Ping errors as problems: one row per error class, the first that matches wins.

The engine's messages are fixed text plus values it produced (addresses, the checked ASCII
name), so `str(error)` is safe to show; no resolver's own text is ever in one. Each problem
carries what a client can act on (`name`, the denied `address` and its `category`,
`errors` for a bad count or family) and the audit record gets the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pingcalc.api.problems import Problem
from pingcalc.ping import (
    LookupShareError,
    NameNotFoundError,
    PingError,
    PlanError,
    ResolverBusyError,
    ResolverFailedError,
    ResolverTimeoutError,
    TargetDeniedError,
    TargetSyntaxError,
    TooManyAddressesError,
)

# Seconds a client is told to wait when every lookup slot is taken: lookups last
# milliseconds, and at most the resolve timeout, so a slot frees soon.
RESOLVER_BUSY_RETRY_AFTER = 1


@dataclass(frozen=True, slots=True)
class Kind:
    """How one class of ping error is answered and recorded."""

    status: int  # the HTTP status
    kind: str  # the problem type's last path segment
    title: str
    reason: str  # the audit record's `reason`
    retry_after: int = 0


# Subclasses before their bases: NameSyntaxError is a TargetSyntaxError, NameDeniedError a
# TargetDeniedError (both answered alike, with the name as an extra field); LookupShareError
# is a ResolverBusyError answered as the token's own limit (429, like its ping cap).
KINDS: tuple[tuple[type[PingError], Kind], ...] = (
    (PlanError, Kind(422, "validation", "Invalid request", "invalid_request")),
    (TargetSyntaxError, Kind(422, "invalid-target", "Invalid target", "invalid_target")),
    (TargetDeniedError, Kind(403, "target-denied", "Target not allowed", "target_denied")),
    (NameNotFoundError, Kind(404, "name-not-found", "Name not found", "name_not_found")),
    (ResolverTimeoutError, Kind(504, "resolver-timeout", "Name lookup timed out",
                                "resolver_timeout")),
    (LookupShareError, Kind(429, "rate-limited", "Too many name lookups",
                            "lookup_per_token_capacity", retry_after=RESOLVER_BUSY_RETRY_AFTER)),
    (ResolverBusyError, Kind(503, "resolver-busy", "Too many name lookups", "resolver_busy",
                             retry_after=RESOLVER_BUSY_RETRY_AFTER)),
    (TooManyAddressesError, Kind(422, "too-many-addresses", "Name has too many addresses",
                                 "too_many_addresses")),
    (ResolverFailedError, Kind(502, "resolver-failed", "Name lookup failed", "resolver_failed")),
)  # fmt: skip


def _fields(error: PingError) -> dict[str, Any]:
    """What the client and the audit record learn besides the message."""
    fields: dict[str, Any] = {}
    name = getattr(error, "name", None)  # NameDeniedError and every ResolutionError have one
    if isinstance(name, str):
        fields["name"] = name
    if isinstance(error, TargetDeniedError):
        fields["address"] = str(error.address)
        fields["category"] = error.category
    return fields


def refusal(error: PingError) -> tuple[str, Problem, dict[str, Any]]:
    """(audit reason, problem, audit fields) for a refused plan, target or lookup.

    Re-raises an error that has no row (a backend error belongs to the exchange, not here).
    """
    kind = next((kind for cls, kind in KINDS if isinstance(error, cls)), None)
    if kind is None:
        raise error
    fields = _fields(error)
    extensions: dict[str, Any] = dict(fields)
    if isinstance(error, PlanError):
        reason = str(error).partition(": ")[2] or str(error)
        extensions["errors"] = [{"field": error.field, "reason": reason}]
    problem = Problem(
        kind.status,
        str(error),
        kind=kind.kind,
        title=kind.title,
        retry_after=kind.retry_after,
        **extensions,
    )
    return kind.reason, problem, fields
