"""The headers every response carries, and the request id that names each request.

Security headers: an API answer is data, never a document to render, frame, sniff or cache
(OWASP A05). The page's own routes replace the CSP with the page's.
"""

from __future__ import annotations

import itertools
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

# A client's X-Request-ID is recorded (as `client_request_id`) only when short and plain:
# anything else could inject header or log text.
CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")

# Server request ids: 16 random hex digits chosen at start-up, then a 16-digit counter. Unique
# across processes and restarts (64 random bits), cheaper than a uuid4 per request, and never
# chosen by a client, so two audit records can never share one.
_PREFIX = os.urandom(8).hex()
_counter = itertools.count(1)


def new_request_id() -> str:
    """A fresh request id: 32 lower-case hex digits."""
    return f"{_PREFIX}{next(_counter):016x}"


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
