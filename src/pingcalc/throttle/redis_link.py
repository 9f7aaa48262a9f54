"""The Redis connection the shared throttles use, and its health: degraded until it answers.

One link is shared by the rate limiter and the shared concurrency cap, so both fall back to
per-process counting together, the switch is logged and audited once, and both return to
Redis together when it answers again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pingcalc.logs import get_logger
from pingcalc.settings import REDIS_SCHEMES

if TYPE_CHECKING:  # redis is imported only when a redis:// storage is configured (start-up)
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = get_logger("pingcalc.throttle")

# Without these a Redis that accepts but never answers would hang every request forever.
REDIS_TIMEOUT_DEFAULTS = {"socket_timeout": "1", "socket_connect_timeout": "1"}
# How often a degraded link asks Redis whether it is back.
REDIS_RETRY_SECONDS = 2.0

SwitchObserver = Callable[[str, dict[str, Any]], object]


def with_timeouts(uri: str) -> str:
    """`uri` with socket timeouts added unless it already sets them."""
    # Split by hand: urlunsplit drops the `//` of `unix:///path.sock` (no host), which redis
    # then refuses as a scheme it does not know.
    rest, mark, fragment = uri.partition("#")
    base, _, query_text = rest.partition("?")
    query = dict(parse_qsl(query_text))
    for key, value in REDIS_TIMEOUT_DEFAULTS.items():
        query.setdefault(key, value)
    return f"{base}?{urlencode(query)}{mark}{fragment}"


def redact_uri(uri: str) -> str:
    """A storage URI safe to log: the password, if any, is replaced."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def is_redis_uri(uri: str) -> bool:
    return uri.startswith(REDIS_SCHEMES)


class RedisLink:
    """A Redis client plus whether it is usable now (not degraded, or back after a retry)."""

    def __init__(self, uri: str, *, on_switch: SwitchObserver | None = None) -> None:
        from redis.asyncio import Redis

        self.uri = uri
        self.client: Redis = Redis.from_url(with_timeouts(uri))
        self.degraded = False
        self.on_switch = on_switch
        self._next_retry = 0.0

    def script(self, source: str) -> AsyncScript:
        """A Lua script run with EVALSHA (loaded on first use)."""
        return self.client.register_script(source)

    async def usable(self) -> bool:
        """Whether to count in Redis now; while degraded, retry it every few seconds."""
        if self.degraded and time.monotonic() >= self._next_retry:
            self._next_retry = time.monotonic() + REDIS_RETRY_SECONDS
            if await self.reachable():
                self._switch(degraded=False)
        return not self.degraded

    def failed(self, exc: BaseException) -> None:
        """A command failed: count per process until Redis answers again (never fail open)."""
        if not self.degraded:
            self._next_retry = time.monotonic() + REDIS_RETRY_SECONDS
            self._switch(degraded=True, error=type(exc).__name__)

    async def reachable(self) -> bool:
        """Whether Redis answers a PING now (readiness)."""
        try:
            answer: Any = self.client.ping()
            return bool(await answer)
        except Exception:  # any failure means "not reachable"
            return False

    def _switch(self, *, degraded: bool, error: str = "") -> None:
        self.degraded = degraded
        event = "rate_limit_storage_degraded" if degraded else "rate_limit_storage_recovered"
        fields = {"storage": redact_uri(self.uri), "error": error}
        (log.warning if degraded else log.info)(event, **fields)
        if self.on_switch is not None:
            self.on_switch(event, fields)
