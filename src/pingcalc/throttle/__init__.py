"""Throttles: rate limits (GCRA), concurrency caps and the penalty box, answered at once.

    limiter = RateLimiter(RedisLink.from_uri(uri) or None)
    decision = await limiter.hit(Limit("ip", Rate.parse("300/minute")), key)
    async with cap.hold(token_name): ...           # CapacityError when full
    box.add(key, seconds); box.retry_after(key)    # refused at the edge until then

With a Redis link, rate limits and the per-token ping cap are shared by every worker and
replica; when Redis stops answering, each process counts in its own memory (still limited,
not shared), reports itself degraded and returns to Redis when it answers again.
"""

from __future__ import annotations

from pingcalc.throttle.capacity import ConcurrencyCap, SharedConcurrencyCap
from pingcalc.throttle.errors import CapacityError, RateSyntaxError, ThrottleError
from pingcalc.throttle.limiter import Decision, Limit, RateLimiter
from pingcalc.throttle.penalty import PenaltyBox
from pingcalc.throttle.rate import Rate
from pingcalc.throttle.redis_link import RedisLink, redact_uri

__all__ = [
    "CapacityError",
    "ConcurrencyCap",
    "Decision",
    "Limit",
    "PenaltyBox",
    "Rate",
    "RateLimiter",
    "RateSyntaxError",
    "RedisLink",
    "SharedConcurrencyCap",
    "ThrottleError",
    "redact_uri",
]
