"""The headers every response carries, and the request id that names each request.

Security headers: an API answer is data, never a document to render, frame, sniff or cache
(OWASP A05). The page's own routes replace the CSP with the page's.
"""

from __future__ import annotations

import os
import re

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
)
_SECURITY_HEADER_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)
_SECURITY_BLOCK = b"".join(name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS)
# What a header name or value may not contain (uvicorn's own checks, RFC 9110 5.1 and 5.5).
_BAD_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")

# A client's X-Request-ID is recorded (as `client_request_id`) only when short and plain:
# anything else could inject header or log text.
CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    """A fresh request id: 32 lower-case hex digits, 128 random bits.

    Never chosen by a client, so two audit records never share one. Random rather than a
    per-process prefix and a counter (0.1 µs cheaper): a counter in every answer told any
    client which replica it reached and how many requests that replica had served.
    """
    return os.urandom(16).hex()


def client_request_id(value: bytes | None) -> str | None:
    """The client's own X-Request-ID when it is plain enough to record, else None."""
    if value is not None and CLIENT_REQUEST_ID.fullmatch(value):
        return value.decode("ascii")
    return None


def response_headers(
    headers: list[tuple[bytes, bytes]], request_id: bytes
) -> list[tuple[bytes, bytes]]:
    """`headers` without any `server` or `x-request-id`, plus the security headers it does not
    set itself (a page sets its own CSP) and our request id."""
    kept = [(k, v) for k, v in headers if k != b"server" and k != b"x-request-id"]
    present = {k for k, _ in kept} & _SECURITY_HEADER_NAMES
    if present:
        kept.extend(h for h in SECURITY_HEADERS if h[0] not in present)
    else:
        kept.extend(SECURITY_HEADERS)
    kept.append((b"x-request-id", request_id))
    return kept


def render_head(
    content_type: bytes | None, length: int, extra: list[tuple[bytes, bytes]], request_id: bytes
) -> bytes:
    """The same headers as `response_headers`, rendered as HTTP/1.1 header lines (for the
    protocol's one-write fast path). Extra headers are validated; the rest are constants."""
    head = b""
    if content_type is not None:
        head = b"content-type: " + content_type + b"\r\ncontent-length: %d\r\n" % length
    if not extra:
        return head + _SECURITY_BLOCK + b"x-request-id: " + request_id + b"\r\n"
    present = set()
    for name, value in extra:
        if _BAD_NAME.search(name) or _BAD_VALUE.search(value):
            raise ValueError("invalid response header")
        if name == b"server" or name == b"x-request-id":
            continue
        present.add(name)
        head += name + b": " + value + b"\r\n"
    if present & _SECURITY_HEADER_NAMES:
        head += b"".join(n + b": " + v + b"\r\n" for n, v in SECURITY_HEADERS if n not in present)
    else:
        head += _SECURITY_BLOCK
    return head + b"x-request-id: " + request_id + b"\r\n"
