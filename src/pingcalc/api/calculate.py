"""`POST /api/v1/calculate`: evaluate one arithmetic expression with `pingcalc.calc`.

Order of checks: authentication and scope (`require("calculate")`, which also rate-limits),
then the media type (415), then the JSON body (422), then the expression (422 with the
column). The body is read here rather than by FastAPI so that a client without a valid
token learns nothing about how its body would have been parsed.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError

from pingcalc.api.deps import ServicesDep, client_ip, require, require_json
from pingcalc.api.problems import PROBLEM_MEDIA_TYPE, Problem
from pingcalc.auth import TokenRecord
from pingcalc.calc import CalcError

router = APIRouter(tags=["calculate"])


class CalculateRequest(BaseModel):
    """The request body: one expression, nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)

    expression: str


class CalculateResponse(BaseModel):
    """The expression as received and its value (an int or a finite float)."""

    expression: str
    result: int | float


_REJECTED: dict[str, Any] = {"description": "The expression was rejected (`detail`, `position`)"}
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_MEDIA_TYPE: {}}}


@router.post(
    "/api/v1/calculate",
    summary="Evaluate an arithmetic expression",
    # Documented here, serialised by hand below: the result is already an int or a finite
    # float, so FastAPI's response validation would only repeat work on the hot path.
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": CalculateRequest.model_json_schema()}},
        }
    },
    responses={
        401: {"description": "Missing or invalid bearer token", **_PROBLEM},
        403: {"description": "The token lacks the `calculate` scope", **_PROBLEM},
        413: {"description": "The body is too large", **_PROBLEM},
        415: {"description": "The body is not JSON", **_PROBLEM},
        200: {"model": CalculateResponse, "description": "The expression and its value"},
        422: {**_REJECTED, **_PROBLEM},
        429: {"description": "Rate limited", **_PROBLEM},
    },
)
async def calculate(
    request: Request,
    services: ServicesDep,
    record: Annotated[TokenRecord, Depends(require("calculate"))],
) -> Response:
    require_json(request)
    payload = _parse_body(await request.body())
    expression = payload.expression
    settings = services.settings
    audit: dict[str, Any] = {
        "request_id": request.scope.get("state", {}).get("request_id"),
        "client_ip": client_ip(request),
        "token": record.name,
        "expression": _for_audit(expression, settings.audit_expression_max),
    }
    started = time.perf_counter()
    try:
        # Bounded to a few milliseconds by the limits: no need to leave the event loop.
        result = services.evaluator.evaluate(expression)
    except CalcError as err:
        services.metrics.observe_calculation(time.perf_counter() - started)
        services.audit.emit(
            "calculation_rejected",
            outcome="rejected",
            reason=type(err).__name__,
            position=err.position,
            **audit,
        )
        raise Problem(
            422,
            str(err),
            kind="calculation-rejected",
            title="Expression rejected",
            position=err.position,
        ) from None
    services.metrics.observe_calculation(time.perf_counter() - started)
    services.audit.emit("calculation", outcome="success", result=result, **audit)
    body = CalculateResponse(expression=expression, result=result).model_dump_json()
    return Response(body, media_type="application/json")


def _parse_body(body: bytes) -> CalculateRequest:
    try:
        return CalculateRequest.model_validate_json(body)
    except ValidationError as exc:
        # The same 422 problem FastAPI would send, with the failing field named.
        errors = [
            {**error, "loc": ("body", *error["loc"])}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None


def _for_audit(expression: str, limit: int) -> str:
    """At most `limit` characters, with control and non-ASCII characters escaped."""
    return expression[:limit].encode("unicode_escape").decode("ascii")
