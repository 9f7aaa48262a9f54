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
    """An error the API answers with a problem+json body.

    `retry_after` (seconds, if not 0) is sent both as the `Retry-After` header and as the
    `retry_after` member, after the other extensions.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
        retry_after: int = 0,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title
        retry = {"Retry-After": str(retry_after)} if retry_after else {}
        self.headers = {**retry, **(headers or {})}
        # Close the connection after answering (the body may be unread, or the request
        # framing untrustworthy).
        self.close = close
        self.extensions = extensions
        if retry_after:
            self.extensions["retry_after"] = retry_after

    def document(self, request_id: str | None = None) -> dict[str, Any]:
        """The problem as a JSON-ready object (one item of a batch answer, say)."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind if self.kind else "about:blank",
            "title": self.title or HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if request_id:
            body["request_id"] = request_id
        body.update(self.extensions)
        return body

    def body(self, request_id: str | None) -> bytes:
        """The serialised problem document."""
        return json.dumps(
            self.document(request_id), ensure_ascii=True, separators=(",", ":")
        ).encode()


def too_many(detail: str, retry_after: int, reason: str) -> Problem:
    """429 with Retry-After."""
    return Problem(429, detail, kind="rate-limited", reason=reason, retry_after=retry_after)


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
