"""RFC 9457 problem details: every error response pingcalc sends has this shape.

``{"type", "title", "status", "detail", "request_id", ...extensions}`` with media type
``application/problem+json``. Internal details of unexpected errors go to the log only.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:pingcalc:problem:"


class Problem(Exception):
    """An error the API answers with a problem+json body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title
        self.headers = headers or {}
        self.extensions = extensions


def problem_body(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    request_id: str | None = None,
    **extensions: Any,
) -> bytes:
    """Serialise one problem document."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind if kind else "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["request_id"] = request_id
    body.update(extensions)
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()


def problem_response(
    request: Request | None,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem+json response carrying the request id."""
    request_id = request.scope.get("state", {}).get("request_id") if request else None
    return Response(
        problem_body(status, detail, kind=kind, title=title, request_id=request_id, **extensions),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "expression") -> "expression"; the "body" prefix tells a client nothing.
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def _reason(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        ctx = error.get("ctx") or {}
        return f"the body is not valid JSON ({ctx.get('error', 'parse error')})"
    return str(error.get("msg", "invalid value"))


async def _problem_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, Problem):  # registered for this type only
        raise exc
    return problem_response(
        request,
        exc.status,
        exc.detail,
        kind=exc.kind,
        title=exc.title,
        headers=exc.headers,
        **exc.extensions,
    )


async def _http_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # registered for this type only
        raise exc
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"there is no resource at {request.url.path[:200]}"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.method[:16]} is not allowed on {request.url.path[:200]}"
    return problem_response(
        request, exc.status_code, detail, headers=dict(exc.headers) if exc.headers else None
    )


async def _validation_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise exc
    errors = [
        {"field": _field_name(err.get("loc", ())), "reason": _reason(err)} for err in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors) or "invalid request"
    return problem_response(
        request, 422, detail, kind="validation", title="Invalid request", errors=errors
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error FastAPI and Starlette raise through problem+json."""
    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
