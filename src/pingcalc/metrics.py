"""Prometheus metrics, one registry per application (tests build isolated apps side by side).

Every label value comes from a bounded set chosen by the server (route templates, known
methods, reasons written in the code), never from raw request text: a client sending
random paths or methods must not be able to grow the registry without bound (memory DoS).
The metric list is in docs/metrics.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Methods a client can send are free text; anything else is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Reasons are written in our code, but a bound keeps a future mistake from exploding the series.
MAX_REASONS = 64
# Request label combinations remembered (unknown methods all map to "other", so the real
# number is small; the bound keeps a mistake from growing it).
MAX_CHILDREN = 1024
_REASON = re.compile(r"[a-z0-9_]{1,64}")
# Events that are refusals; their `reason` labels pingcalc_rejections_total.
REJECTION_EVENTS = frozenset(
    {
        "auth_failure",
        "authz_denied",
        "rate_limited",
        "capacity_rejected",
        "calculation_rejected",
        "ping_rejected",
    }
)
# ICMP echo round trips on loopback and LANs are sub-millisecond; the ping timeout is <= 2 s.
RTT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
               1.0, 2.0)  # fmt: skip
# An evaluation is bounded to milliseconds by the calc limits; the buckets show how close.
CALC_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                0.025, 0.05, 0.1)  # fmt: skip


class Metrics:
    """The counters, gauges and histograms of one application instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pingcalc_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "pingcalc_http_request_duration_seconds",
            "Time from the first byte of a request to the end of its response, by route.",
            ("route",),
            registry=self.registry,
        )
        self.rejections = Counter(
            "pingcalc_rejections",
            "Requests refused, by reason (auth, scope, rate limit, capacity, validation, audit).",
            ("reason",),  # at most MAX_REASONS values
            registry=self.registry,
        )
        self.rate_limit_hits = Counter(
            "pingcalc_rate_limit_hits",
            "Requests refused by a rate limit, by limit.",
            ("limit",),  # ip_rate_limit, token_rate_limit or auth_failure_limit
            registry=self.registry,
        )
        self.pings_in_flight = Gauge(
            "pingcalc_pings_in_flight",
            "Pings running now.",
            registry=self.registry,
        )
        self.ping_rtt = Histogram(
            "pingcalc_ping_rtt_seconds",
            "Round-trip time of each ICMP echo reply received.",
            buckets=RTT_BUCKETS,
            registry=self.registry,
        )
        self.calculation_duration = Histogram(
            "pingcalc_calculation_duration_seconds",
            "Time to parse and evaluate one expression.",
            buckets=CALC_BUCKETS,
            registry=self.registry,
        )
        self._reasons: set[str] = set()
        # Bound label children by (route, method, status): labels() costs a lock and a lookup.
        self._request_children: dict[tuple[str | None, str, int], tuple[Any, Any]] = {}

    def track_pings_in_flight(self, read: Callable[[], int]) -> None:
        """Read the in-flight count from the ping cap at scrape time (no bookkeeping per ping)."""
        self.pings_in_flight.set_function(lambda: float(read()))

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """One answered request, by its route template (None: no route matched)."""
        # The template (`/api/v1/ping`), never the raw path: unknown paths share one series.
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            label = route if route is not None else "unmatched"
            children = (
                self.requests.labels(
                    label, method if method in KNOWN_METHODS else "other", str(status)
                ),
                self.request_duration.labels(label),
            )
            # Bounded by routes x methods x statuses: labels come from the server, not clients.
            if len(self._request_children) < MAX_CHILDREN:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_audit(self, record: dict[str, Any]) -> None:
        """Auditor's observer: count refusals where they are recorded, so the two agree."""
        event = record.get("event")
        if event not in REJECTION_EVENTS:
            return
        reason = self._reason(record.get("reason"))
        self.rejections.labels(reason).inc()
        if event == "rate_limited":
            self.rate_limit_hits.labels(reason).inc()

    def observe_ping_rtt(self, seconds: float) -> None:
        """One echo reply's round trip."""
        self.ping_rtt.observe(seconds)

    def observe_calculation(self, seconds: float) -> None:
        """One expression's parse and evaluation time."""
        self.calculation_duration.observe(seconds)

    def _reason(self, reason: object) -> str:
        if not isinstance(reason, str) or not _REASON.fullmatch(reason):
            return "other"
        if reason not in self._reasons:
            if len(self._reasons) >= MAX_REASONS:
                return "other"
            self._reasons.add(reason)
        return reason

    def render(self) -> bytes:
        """The exposition text for a scrape."""
        return generate_latest(self.registry)
