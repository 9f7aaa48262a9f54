"""The errors of the throttles, in one place.

    ThrottleError(PingcalcError)
     ├── RateSyntaxError      a rate that is not "N/second|minute|hour|day"  (settings)
     └── CapacityError        a concurrency cap is full: retry after `retry_after` s (429/503)

A rate limit that refuses is not an error: `RateLimiter.hit` returns a `Decision`.
"""

from __future__ import annotations

from pingcalc.errors import PingcalcError


class ThrottleError(PingcalcError):
    """Base of the throttles' errors."""


class RateSyntaxError(ThrottleError, ValueError):
    """A rate could not be parsed; the message shows the expected form."""


class CapacityError(ThrottleError):
    """A concurrency cap is full; the caller should retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int, reason: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason
