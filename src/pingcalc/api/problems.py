"""RFC 9457 problem details: every error response pingcalc sends has this shape.

``{"type", "title", "status", "detail", "request_id", ...extensions}`` with media type
``application/problem+json``. Internal details of unexpected errors go to the log only.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError

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
        close: bool = False,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title
        self.headers = headers or {}
        # Close the connection after answering (the body may be unread, or the request
        # framing untrustworthy).
        self.close = close
        self.extensions = extensions

    def body(self, request_id: str | None) -> bytes:
        return problem_body(
            self.status,
            self.detail,
            kind=self.kind,
            title=self.title,
            request_id=request_id,
            **self.extensions,
        )

    def document(self, request_id: str | None = None) -> dict[str, Any]:
        """The problem as a JSON-ready object (one item of a batch answer, say)."""
        return problem_document(
            self.status,
            self.detail,
            kind=self.kind,
            title=self.title,
            request_id=request_id,
            **self.extensions,
        )


def problem_document(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    request_id: str | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """One problem document as an object."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind if kind else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["request_id"] = request_id
    body.update(extensions)
    return body


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
    body = problem_document(
        status, detail, kind=kind, title=title, request_id=request_id, **extensions
    )
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()


def too_many(detail: str, retry_after: int, reason: str) -> Problem:
    """429 with Retry-After."""
    return Problem(
        429,
        detail,
        kind="rate-limited",
        headers={"Retry-After": str(retry_after)},
        reason=reason,
        retry_after=retry_after,
    )


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _reason(error: Any) -> str:
    if error.get("type") == "json_invalid":
        ctx = error.get("ctx") or {}
        return f"the body is not valid JSON ({ctx.get('error', 'parse error')})"
    return str(error.get("msg", "invalid value"))


def invalid_body(exc: ValidationError) -> Problem:
    """422 naming each failing field and why (never echoing the input)."""
    errors = [
        {"field": _field_name(err["loc"]), "reason": _reason(err)}
        for err in exc.errors(include_url=False, include_input=False, include_context=True)
    ]
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors) or "invalid request"
    return Problem(422, detail, kind="validation", title="Invalid request", errors=errors)
