"""What the edge tells once per request, whatever happened: the access line and the metrics."""

from __future__ import annotations

from typing import Any

from pingcalc.api.edge import Observer
from pingcalc.api.exchange import Exchange
from pingcalc.logs import write_event
from pingcalc.metrics import Metrics


def access_line(ex: Exchange, elapsed: float) -> None:
    """One JSON `access` event per request (the same render path as every other event)."""
    fields: dict[str, Any] = {
        "request_id": ex.request_id,
        "method": ex.method,
        "path": ex.path,
        "status": ex.status,
        "duration_ms": round(elapsed * 1000, 3),
        "client_ip": ex.client_ip,
        "token": ex.token,
    }
    if ex.client_request_id is not None:
        fields["client_request_id"] = ex.client_request_id
    if ex.reason is not None:
        fields["reason"] = ex.reason
    write_event("access", **fields)


def metrics_observer(metrics: Metrics) -> Observer:
    """Count the request by route template (never the raw path), method and status."""

    def observe(ex: Exchange, elapsed: float) -> None:
        metrics.observe_request(ex.route, ex.method, ex.status, elapsed)

    return observe
