"""Audit events: who did what, with which outcome, separate from the access log.

Every event is a JSON line on stdout with the fixed fields ``ts, event, request_id,
client_ip, token, outcome, reason`` plus event-specific ones. The token field is always a
token *name*; the secret never reaches this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pingcalc.logging import get_logger

_log = get_logger("pingcalc.audit")

FIXED_FIELDS = ("request_id", "client_ip", "token", "outcome", "reason")


def utc_now() -> str:
    """RFC 3339 UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Auditor:
    """Writes audit events to stdout."""

    def __init__(self) -> None:
        self.healthy = True

    def emit(self, event: str, **fields: Any) -> bool:
        """Record one event; False if it could not be recorded durably."""
        record: dict[str, Any] = {"ts": utc_now(), "event": event}
        for name in FIXED_FIELDS:
            record[name] = fields.pop(name, None)
        record.update(fields)
        _log.info("audit", audit=record)
        return True
