"""The OpenAPI 3.1 document, built from the route table itself.

Each route carries its `Operation` (summary, scope, request model, answers); the document is
generated from those once at start-up, so what is documented is what is routed. Request
and response bodies are described by the pydantic models the routes validate and
serialise with; every error answer is an RFC 9457 problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from pingcalc.api.problems import PROBLEM_MEDIA_TYPE
from pingcalc.api.routing import Route

JSON_MEDIA_TYPE = "application/json"
REF_TEMPLATE = "#/components/schemas/{model}"


class ProblemDocument(BaseModel):
    """An RFC 9457 problem: what went wrong, for a human, and where to find it in the logs."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented response: a model, a raw schema, or a media type alone.

    `extra_media` adds other media types of the same answer (chosen by `Accept`), each
    described by a model or by a raw media type object.
    """

    description: str
    model: type[BaseModel] | None = None
    media_type: str = JSON_MEDIA_TYPE
    schema: dict[str, Any] | None = None
    extra_media: tuple[tuple[str, type[BaseModel] | dict[str, Any]], ...] = ()


def problem(description: str) -> Answer:
    return Answer(description, ProblemDocument, PROBLEM_MEDIA_TYPE)


# Answers most operations share.
UNAUTHORIZED = problem("Missing or invalid bearer token (`WWW-Authenticate` says which)")
RATE_LIMITED = problem("Rate limited: `Retry-After` says when to retry")
BAD_FORWARDING = problem("A trusted proxy's `X-Forwarded-For` names no client address")
TOO_LARGE = problem("The body is larger than the server's limit")
NOT_JSON = problem("The body is not sent as `application/json`")
AUDIT_DOWN = problem("The audit trail cannot be written (fail-closed): retry later")
# What admission (`Gate.admit`) may answer on any route that needs a token.
ADMISSION_ANSWERS: dict[int, Answer] = {
    400: BAD_FORWARDING,
    401: UNAUTHORIZED,
    429: RATE_LIMITED,
}
# What a route that needs a token and reads a JSON body may answer before its own checks.
JSON_BODY_ANSWERS: dict[int, Answer] = {**ADMISSION_ANSWERS, 413: TOO_LARGE, 415: NOT_JSON}


@dataclass(frozen=True, slots=True)
class Operation:
    """What the OpenAPI document says of one route."""

    summary: str
    tags: tuple[str, ...]
    description: str = ""
    scope: str | None = None  # the token scope needed; None: no authentication
    request: type[BaseModel] | None = None
    answers: dict[int, Answer] = field(default_factory=dict)


def _models(
    routes: Iterable[Route],
) -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    found: dict[type[BaseModel], Literal["validation", "serialization"]] = {}
    for route in routes:
        operation = route.operation
        if operation is None:
            continue
        if operation.request is not None:
            found.setdefault(operation.request, "validation")
        for answer in operation.answers.values():
            if answer.model is not None:
                found.setdefault(answer.model, "serialization")
            for _, media in answer.extra_media:
                if not isinstance(media, dict):
                    found.setdefault(media, "serialization")
    return list(found.items())


def build_document(
    routes: Iterable[Route], *, title: str, version: str, summary: str, description: str
) -> dict[str, Any]:
    """The whole document for the documented routes."""
    routes = [route for route in routes if route.operation is not None]
    refs, definitions = models_json_schema(_models(routes), ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = route.operation
        if operation is None:  # filtered above
            continue
        item: dict[str, Any] = {
            "tags": list(operation.tags),
            "summary": operation.summary,
            "operationId": f"{route.method.lower()}{route.path.replace('/', '_')}",
        }
        if operation.description:
            item["description"] = operation.description
        if operation.scope is not None:
            item["security"] = [{"bearer": [operation.scope]}]
        if operation.request is not None:
            item["requestBody"] = {
                "required": True,
                "content": {JSON_MEDIA_TYPE: {"schema": refs[(operation.request, "validation")]}},
            }
        responses: dict[str, Any] = {}
        for status, answer in sorted(operation.answers.items()):
            content: dict[str, Any] = {}
            if answer.model is not None:
                content[answer.media_type] = {"schema": refs[(answer.model, "serialization")]}
            elif answer.schema is not None:
                content[answer.media_type] = {"schema": answer.schema}
            else:
                content[answer.media_type] = {}
            for media_type, media in answer.extra_media:
                content[media_type] = (
                    media if isinstance(media, dict) else {"schema": refs[(media, "serialization")]}
                )
            responses[str(status)] = {"description": answer.description, "content": content}
        item["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "summary": summary,
            "description": description,
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A pingcalc token (`pc_...`) with the operation's scope",
                }
            },
        },
    }


def render(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode()
