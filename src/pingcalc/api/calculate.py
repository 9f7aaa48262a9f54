"""`POST /api/v1/calculate`: evaluate one arithmetic expression with `pingcalc.calc`.

Order of checks: admission (`Gate.admit`: address limit, token, scope, audit, token limit),
then the media type (415), then the JSON body (422), then the expression (422 with the
column). The body is read only after admission, so a client without a valid token learns
nothing about how its body would have been parsed. The audit record is written before the
answer; if it cannot be written under the fail-closed policy, the answer is 503.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pingcalc.api.admission import admit, audit_unavailable, require_json
from pingcalc.api.exchange import Exchange
from pingcalc.api.openapi import (
    AUDIT_DOWN,
    NOT_JSON,
    RATE_LIMITED,
    TOO_LARGE,
    UNAUTHORIZED,
    Answer,
    Operation,
    problem,
)
from pingcalc.api.problems import Problem, invalid_body
from pingcalc.api.routing import Route
from pingcalc.audit import clip
from pingcalc.calc import CalcError
from pingcalc.services import Services

PATH = "/api/v1/calculate"


class CalculateRequest(BaseModel):
    """The request body: one expression, nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)

    expression: str


class CalculateResponse(BaseModel):
    """The expression as received and its value (an int or a finite float)."""

    expression: str
    result: int | float


OPERATION = Operation(
    summary="Evaluate an arithmetic expression",
    tags=("calculate",),
    description="Numbers, `+ - * / // % **`, parentheses, and whitelisted functions and "
    "constants; every resource is bounded before it is spent.",
    scope="calculate",
    request=CalculateRequest,
    answers={
        200: Answer("The expression and its value", CalculateResponse),
        400: problem("A trusted proxy's `X-Forwarded-For` names no client address"),
        401: UNAUTHORIZED,
        403: problem("The token lacks the `calculate` scope"),
        413: TOO_LARGE,
        415: NOT_JSON,
        422: problem("The body or the expression was rejected (`detail`, `position`)"),
        429: RATE_LIMITED,
        503: AUDIT_DOWN,
    },
)


def route(services: Services) -> Route:
    """The route, bound to `services`."""
    gate = services.gate
    audit = services.audit
    evaluator = services.evaluator
    metrics = services.metrics
    audit_limit = services.settings.audit_expression_max
    parse = CalculateRequest.model_validate_json

    async def calculate(ex: Exchange) -> None:
        await admit(ex, gate, audit, "calculate")
        require_json(ex)
        try:
            expression = parse(await ex.read_body()).expression
        except ValidationError as exc:
            raise invalid_body(exc) from None
        context: dict[str, Any] = ex.context()
        context["expression"] = clip(expression, audit_limit)
        started = time.perf_counter()
        try:
            # Bounded to a few milliseconds by the calc bounds: no need to leave the loop.
            result = evaluator.evaluate(expression)
        except CalcError as err:
            metrics.observe_calculation(time.perf_counter() - started)
            if not audit.emit(
                "calculation_rejected",
                outcome="rejected",
                reason=type(err).__name__,
                position=err.position,
                **context,
            ):
                raise audit_unavailable() from None
            raise Problem(
                422,
                str(err),
                kind="calculation-rejected",
                title="Expression rejected",
                position=err.position,
            ) from None
        metrics.observe_calculation(time.perf_counter() - started)
        if not audit.emit("calculation", outcome="success", result=result, **context):
            raise audit_unavailable()
        body = json.dumps({"expression": expression, "result": result}, separators=(",", ":"))
        await ex.respond(200, body.encode())

    return Route("POST", PATH, calculate, OPERATION)
