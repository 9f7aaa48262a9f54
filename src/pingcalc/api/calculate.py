"""`POST /api/v1/calculate`: evaluate one arithmetic expression, or a batch, with `pingcalc.calc`.

Order of checks: admission (`Gate.admit`: address limit, token, scope, audit, token limit),
then the media type (415), then the JSON body (422), then the expression (422 with the
column). The body is read only after admission, so a client without a valid token learns
nothing about how its body would have been parsed. The audit record is written before the
answer; if it cannot be written under the fail-closed policy, the answer is 503.

A body holds exactly one of `expression` (answered `{"expression", "result"}`, or a 422
problem) and `expressions` (answered 200 `{"results": [...]}` in order, each item either
`{"expression", "result"}` or `{"expression", "error": <problem>}`). The single form is tried
first, so the common request costs what it did before batches existed. In a batch every
expression counts against the token's rate limit (the admission counted the first;
`Gate.spend` the others); expressions past the budget are answered as 429 items, not
evaluated. Each evaluated expression leaves its own audit record; the refused tail leaves
one record for all of its items (how many, and the first and last index), so a batch over
budget writes no more records than the single requests it stands for, which the penalty box
refuses unaudited. `precision` (significant digits) rounds float results for display;
integers are exact and never rounded.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator

from pingcalc.api.admission import admit, audit_unavailable, require_json, unrecorded
from pingcalc.api.exchange import Exchange
from pingcalc.api.openapi import (
    AUDIT_DOWN,
    JSON_BODY_ANSWERS,
    Answer,
    Operation,
    ProblemDocument,
    problem,
)
from pingcalc.api.problems import Problem, invalid_body, too_many
from pingcalc.api.routing import Route
from pingcalc.audit import clip
from pingcalc.auth import TokenRecord
from pingcalc.calc import CalcError, round_significant
from pingcalc.calc.bounds import MAX_PRECISION, MIN_PRECISION
from pingcalc.calc.functions import Number
from pingcalc.services import Services

PATH = "/api/v1/calculate"
# Expressions per batch. One admission buys at most this many evaluations and audit records,
# and each past the first still spends the token's rate, so a batch is no lever for more
# work than single requests (T1499); it is also how far a client can amplify one body.
MAX_BATCH_EXPRESSIONS = 32
# Characters of all the expressions of one batch together. Evaluation is linear in length
# (the worst hostile 1,000 characters cost about 2 ms), so this bounds how long one batch
# holds the event loop, about 16 ms, whatever `calc_max_length` and `max_body_bytes` an
# operator chooses (T1499: one request stalling every other client of the process).
MAX_BATCH_CHARACTERS = 8_000


class _Precision(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    precision: int | None = Field(
        default=None,
        ge=MIN_PRECISION,
        le=MAX_PRECISION,
        description="Round a float result to this many significant digits (it stays a "
        "number); integer results are exact and never rounded",
    )


class CalculateRequest(_Precision):
    """One expression."""

    expression: str


class CalculateBatchRequest(_Precision):
    """Several expressions, answered in order."""

    expressions: list[str] = Field(min_length=1, max_length=MAX_BATCH_EXPRESSIONS)

    @field_validator("expressions")
    @classmethod
    def _bounded(cls, expressions: list[str]) -> list[str]:
        total = sum(len(expression) for expression in expressions)
        if total > MAX_BATCH_CHARACTERS:
            raise ValueError(
                f"at most {MAX_BATCH_CHARACTERS} characters in all the expressions of a batch "
                f"together, not {total}"
            )
        return expressions


class CalculateBody(RootModel[CalculateRequest | CalculateBatchRequest]):
    """Exactly one of `expression` and `expressions`, and optionally `precision`."""


class CalculateResponse(BaseModel):
    """The expression as received and its value (an int or a finite float)."""

    expression: str
    result: int | float


class CalculateFailure(BaseModel):
    """An expression of a batch that was not evaluated, and why (a 422 or 429 problem)."""

    expression: str
    error: ProblemDocument


class CalculateBatchResponse(BaseModel):
    """One item per expression, in the order sent."""

    results: list[CalculateResponse | CalculateFailure]


class CalculateAnswer(RootModel[CalculateResponse | CalculateBatchResponse]):
    """`{"expression", "result"}` for one expression, `{"results": [...]}` for a batch."""


OPERATION = Operation(
    summary="Evaluate an arithmetic expression, or a batch of them",
    tags=("calculate",),
    description="Numbers, `+ - * / // % **`, parentheses, and whitelisted functions and "
    "constants; every resource is bounded before it is spent. Send `expression` for one "
    f"expression or `expressions` for up to {MAX_BATCH_EXPRESSIONS} ({MAX_BATCH_CHARACTERS} "
    "characters in all), each counted against the token's rate limit. The whole syntax, under "
    "this server's bounds, is `GET /static/calc-reference.json` (the web page's help panel).",
    scope="calculate",
    request=CalculateBody,
    answers={
        **JSON_BODY_ANSWERS,
        200: Answer(
            "The value, or one result or problem per expression of a batch", CalculateAnswer
        ),
        403: problem("The token lacks the `calculate` scope"),
        422: problem("The body or the expression was rejected (`detail`, `position`)"),
        503: AUDIT_DOWN,
    },
)


def _rejected(err: CalcError) -> Problem:
    return Problem(
        422,
        str(err),
        kind="calculation-rejected",
        title="Expression rejected",
        position=err.position,
    )


def _extra(error: ValidationError, field: str) -> bool:
    """Whether pydantic refused `field` as a field its model does not have."""
    return any(e["type"] == "extra_forbidden" and e["loc"] == (field,) for e in error.errors())


def _batch(raw: bytes, single: ValidationError) -> CalculateBatchRequest:
    """The batch form of a body the single form refused, or the problem that says why not."""
    if not _extra(single, "expressions"):
        raise invalid_body(single)
    try:
        return CalculateBatchRequest.model_validate_json(raw)
    except ValidationError as exc:
        if _extra(exc, "expression"):
            detail = "give either `expression` or `expressions`, not both"
            raise Problem(
                422,
                detail,
                kind="validation",
                title="Invalid request",
                errors=[{"field": "body", "reason": detail}],
            ) from None
        raise invalid_body(exc) from None


def route(services: Services) -> Route:
    """The route, bound to `services`."""
    gate = services.gate
    audit = services.audit
    evaluator = services.evaluator
    metrics = services.metrics
    audit_limit = services.settings.audit_expression_max
    parse = CalculateRequest.model_validate_json

    async def batch(ex: Exchange, record: TokenRecord, body: CalculateBatchRequest) -> None:
        expressions, precision = body.expressions, body.precision
        granted, retry_after = await gate.spend(record, len(expressions) - 1)
        context: dict[str, Any] = ex.context()
        if precision is not None:
            context["precision"] = precision
        results: list[dict[str, Any]] = []
        for index, expression in enumerate(expressions[: granted + 1]):
            fields = {**context, "expression": clip(expression, audit_limit), "index": index}
            started = time.perf_counter()
            try:
                value = evaluator.evaluate(expression)
            except CalcError as err:
                metrics.observe_calculation(time.perf_counter() - started)
                results.append({"expression": expression, "error": _rejected(err).document()})
                recorded = audit.emit(
                    "calculation_rejected",
                    outcome="rejected",
                    reason=type(err).__name__,
                    position=err.position,
                    **fields,
                )
            else:
                metrics.observe_calculation(time.perf_counter() - started)
                if precision is not None:
                    value = round_significant(value, precision)
                results.append({"expression": expression, "result": value})
                recorded = audit.emit("calculation", outcome="success", result=value, **fields)
            if not recorded:
                raise unrecorded(audit, "calculation_rejected", fields)
        tail = expressions[granted + 1 :]  # past the token's budget: not evaluated
        if tail:
            refused = too_many(
                "this token is over its rate limit; this expression was not evaluated",
                retry_after,
                "token_rate_limit",
            ).document()
            results.extend({"expression": expression, "error": refused} for expression in tail)
            # One record for the whole tail (T1499 through the audit trail: one per item made
            # a batch over budget write 16 times the records of the requests it stands for).
            fields = {
                **context,
                "refused": len(tail),
                "first_index": granted + 1,
                "last_index": len(expressions) - 1,
            }
            if not audit.emit(
                "calculation_rejected",
                outcome="rejected",
                reason="token_rate_limit",
                retry_after=retry_after,
                **fields,
            ):
                raise unrecorded(audit, "calculation_rejected", fields)
        headers = [(b"retry-after", str(retry_after).encode())] if retry_after else None
        body_out = json.dumps({"results": results}, separators=(",", ":")).encode()
        await ex.respond(200, body_out, headers=headers)

    async def calculate(ex: Exchange) -> None:
        record = await admit(ex, gate, audit, "calculate")
        require_json(ex)
        raw = await ex.read_body()
        try:
            body = parse(raw)
        except ValidationError as exc:
            await batch(ex, record, _batch(raw, exc))
            return
        expression = body.expression
        context: dict[str, Any] = ex.context()
        context["expression"] = clip(expression, audit_limit)
        started = time.perf_counter()
        try:
            # Bounded to a few milliseconds by the calc bounds: no need to leave the loop.
            result: Number = evaluator.evaluate(expression)
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
            raise _rejected(err) from None
        metrics.observe_calculation(time.perf_counter() - started)
        if body.precision is not None:
            result = round_significant(result, body.precision)
            context["precision"] = body.precision
        if not audit.emit("calculation", outcome="success", result=result, **context):
            raise unrecorded(audit, "calculation_rejected", context)
        out = json.dumps({"expression": expression, "result": result}, separators=(",", ":"))
        await ex.respond(200, out.encode())

    return Route("POST", PATH, calculate, OPERATION)
