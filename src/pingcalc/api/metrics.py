"""`GET /metrics`: Prometheus exposition text, for tokens with the `metrics` scope."""

from __future__ import annotations

from pingcalc.api.admission import admit
from pingcalc.api.exchange import Exchange
from pingcalc.api.openapi import ADMISSION_ANSWERS, Answer, Operation, problem
from pingcalc.api.routing import Route
from pingcalc.metrics import CONTENT_TYPE
from pingcalc.services import Services

OPERATION = Operation(
    summary="Prometheus metrics (scope `metrics`)",
    tags=("metrics",),
    scope="metrics",
    answers={
        **ADMISSION_ANSWERS,
        200: Answer("Prometheus text format", media_type=CONTENT_TYPE, schema={"type": "string"}),
        403: problem("The token lacks the `metrics` scope"),
    },
)


def route(services: Services) -> Route:
    async def metrics(ex: Exchange) -> None:
        # Metrics reveal traffic patterns and rejection reasons: scraping is authenticated too.
        await admit(ex, services.gate, services.audit, "metrics")
        await ex.respond(200, services.metrics.render(), CONTENT_TYPE.encode())

    return Route("GET", "/metrics", metrics, OPERATION)
