"""`GET /metrics`: Prometheus exposition text, for tokens with the `metrics` scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from pingcalc.api.deps import ServicesDep, require
from pingcalc.auth import TokenRecord
from pingcalc.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (scope `metrics`)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def metrics(
    services: ServicesDep, _token: Annotated[TokenRecord, Depends(require("metrics"))]
) -> Response:
    # Metrics reveal traffic patterns and rejection reasons: scraping is authenticated too.
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
