"""Rate limits (the `limits` library) and concurrency caps, answered at once: no queue.

With ``memory://`` counts are per process. With ``redis://`` they are shared by every worker
and replica; if Redis stops answering, each process falls back to its own memory counts
(still limited, just not shared), reports itself degraded, and returns to Redis when it
answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindow
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from pingcalc.errors import PingcalcError
from pingcalc.logs import get_logger

log = get_logger("pingcalc.limits")

# Without these a Redis that accepts but never answers would hang every request forever.
REDIS_TIMEOUT_DEFAULTS = {"socket_timeout": "1", "socket_connect_timeout": "1"}
# How often a degraded limiter asks Redis whether it is back.
REDIS_RETRY_SECONDS = 2.0


# Most addresses the penalty box remembers; past it, new offenders go through the normal
# (still limiting, just costlier) path instead of growing memory without bound.
PENALTY_BOX_MAX = 100_000


class PenaltyBox:
    """Addresses (and token hashes) over their rate limit, refused at the edge until their
    window frees.

    Under a flood, answering each request from a blocked address through routing,
    authentication and the limiter costs as much as serving it; a dictionary lookup in the
    first middleware costs almost nothing, so legitimate clients keep their latency (T1499).
    """

    def __init__(self, max_entries: int = PENALTY_BOX_MAX) -> None:
        self.max_entries = max_entries
        self._until: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._until)

    def add(self, address: str, seconds: int) -> None:
        """Refuse `address` for the next `seconds`."""
        now = time.monotonic()
        if len(self._until) >= self.max_entries:
            self._until = {a: t for a, t in self._until.items() if t > now}
            if len(self._until) >= self.max_entries:
                return
        self._until[address] = now + seconds

    def retry_after(self, address: str) -> int:
        """Seconds `address` must still wait, or 0 when it may pass."""
        until = self._until.get(address)
        if until is None:
            return 0
        remaining = until - time.monotonic()
        if remaining <= 0:
            del self._until[address]
            return 0
        return math.ceil(remaining)


def token_box_key(token_sha256: str) -> str:
    """The penalty-box key of a token over its rate limit (by hash: the secret is never kept)."""
    return "token:" + token_sha256


class CapacityError(PingcalcError):
    """A concurrency cap is full; the caller should retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int, reason: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one rate-limit hit."""

    allowed: bool
    retry_after: int = 0


def redis_uri_with_timeouts(uri: str) -> str:
    """Add socket timeouts to a redis:// URI unless it already sets them."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    for key, value in REDIS_TIMEOUT_DEFAULTS.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def redact_uri(uri: str) -> str:
    """A storage URI safe to log: the password, if any, is replaced."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class RateLimiter:
    """Moving-window limits keyed by (limit name, identity), with a memory fallback.

    In-process counts use `limits`' synchronous memory storage: it does no I/O, so calling it
    from the event loop is safe, and it costs half of the async storage's lock and sweep
    machinery per check (bench/bench_http.py).
    """

    def __init__(
        self,
        storage_uri: str,
        *,
        enabled: bool = True,
        on_switch: Callable[[str, dict[str, Any]], object] | None = None,
    ) -> None:
        self.enabled = enabled
        self.storage_uri = storage_uri
        self.shared = storage_uri.startswith(("redis://", "rediss://"))
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis = (
            RedisStorage(
                "async+" + redis_uri_with_timeouts(storage_uri),
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="pingcalc",
            )
            if self.shared
            else None
        )
        self._shared_strategy = AsyncMovingWindow(self._redis) if self._redis else None
        self.degraded = False
        self._next_retry = 0.0
        self._on_switch = on_switch
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, rate: str) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            item = self._items[rate] = parse(rate)
        return item

    def _switch(self, degraded: bool, error: str = "") -> None:
        self.degraded = degraded
        event = "rate_limit_storage_degraded" if degraded else "rate_limit_storage_recovered"
        fields = {"storage": redact_uri(self.storage_uri), "error": error}
        (log.warning if degraded else log.info)(event, **fields)
        if self._on_switch is not None:
            self._on_switch(event, fields)

    async def _use_redis(self) -> bool:
        """Whether to count in Redis now; while degraded, retry it every few seconds."""
        if self._redis is None:
            return False
        if self.degraded and time.monotonic() >= self._next_retry:
            self._next_retry = time.monotonic() + REDIS_RETRY_SECONDS
            if await self.reachable():
                self._switch(False)
        return not self.degraded

    async def hit(self, rate: str, *identity: str) -> Decision:
        """Count one request against `rate` for `identity`; say whether it may proceed."""
        return await self._decide(rate, identity, count=True)

    async def test(self, rate: str, *identity: str) -> Decision:
        """Whether `identity` is still under `rate`, without counting a hit."""
        return await self._decide(rate, identity, count=False)

    async def _decide(self, rate: str, identity: tuple[str, ...], *, count: bool) -> Decision:
        if not self.enabled:
            return Decision(True)
        item = self._item(rate)
        if self._shared_strategy is not None and await self._use_redis():
            strategy = self._shared_strategy
            try:
                if await (strategy.hit if count else strategy.test)(item, *identity):
                    return Decision(True)
                stats = await strategy.get_window_stats(item, *identity)
            except Exception as exc:
                # A Redis failure must not become a 500 nor lift the limits: count in memory.
                self.mark_degraded(type(exc).__name__)
                return await self._decide(rate, identity, count=count)
        else:
            memory = self._memory
            if (memory.hit if count else memory.test)(item, *identity):
                return Decision(True)
            stats = memory.get_window_stats(item, *identity)
        return Decision(False, max(1, math.ceil(stats.reset_time - time.time())))

    def mark_degraded(self, error: str) -> None:
        """Switch to per-process memory limits until Redis answers again."""
        if not self.degraded:
            self._next_retry = time.monotonic() + REDIS_RETRY_SECONDS
            self._switch(True, error)

    async def hit_probe(self) -> None:
        """While degraded, check (at most every few seconds) whether Redis is back."""
        await self._use_redis()

    async def reachable(self) -> bool:
        """Whether the configured storage answers now (readiness); memory always does."""
        if self._redis is None:
            return True
        try:
            return bool(await self._redis.check())
        except Exception:  # any storage failure means "not reachable"
            return False


class ConcurrencyCap:
    """At most `total` holders at once, and at most `per_key` per key; full means refuse now."""

    def __init__(self, total: int, per_key: int, *, name: str) -> None:
        self.total = total
        self.per_key = per_key
        self.name = name
        self._held = 0
        self._by_key: Counter[str] = Counter()
        self._idle = asyncio.Event()
        self._idle.set()

    def _full(self) -> CapacityError:
        return CapacityError(
            f"the server is running {self.total} {self.name}s, its limit; try again shortly",
            retry_after=1,
            reason=f"{self.name}_capacity",
        )

    def _key_full(self) -> CapacityError:
        return CapacityError(
            f"this token already has {self.per_key} {self.name}s in flight, its limit",
            retry_after=1,
            reason=f"{self.name}_per_token_capacity",
        )

    @property
    def in_flight(self) -> int:
        return self._held

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for `key` for the duration of the block, or raise CapacityError."""
        if self._held >= self.total:
            raise self._full()
        if self._by_key[key] >= self.per_key:
            raise self._key_full()
        self._held += 1
        self._by_key[key] += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._held -= 1
            self._by_key[key] -= 1
            if self._by_key[key] <= 0:
                del self._by_key[key]
            if self._held == 0:
                self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until nothing is held (graceful shutdown); False if `seconds` passed first."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


# Atomic acquire on one sorted set (a token's pings in flight, on every replica) of holder ids
# scored by start time. Entries older than the stale bound are dropped first, so a crashed
# replica's slots free themselves. Returns 0 when acquired, 2 when the token's cap is full.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 0
"""


class SharedConcurrencyCap(ConcurrencyCap):
    """The per-token cap counted in Redis, so it holds across workers and replicas.

    The total cap stays per process: it protects each process's own sockets and memory, and
    a fleet-wide total would shrink as replicas are added.

    When Redis fails, the local (per-process) cap takes over: still bounded, not shared.
    """

    def __init__(
        self,
        total: int,
        per_key: int,
        *,
        name: str,
        redis_uri: str,
        limiter: RateLimiter,
        stale_seconds: float = 60.0,
    ) -> None:
        super().__init__(total, per_key, name=name)
        self._redis: Redis = Redis.from_url(redis_uri_with_timeouts(redis_uri))
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._limiter = limiter  # shares its degraded state and audit of the switch
        self._stale = stale_seconds
        self._prefix = f"pingcalc:inflight:{name}"

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold a slot counted in Redis, or in this process while Redis is down."""
        if self._limiter.degraded:
            await self._limiter.hit_probe()
        if self._limiter.degraded:
            async with super().hold(key):
                yield
            return
        if self._held >= self.total:
            raise self._full()
        holder = uuid.uuid4().hex
        token_key = f"{self._prefix}:key:{key}"
        now = time.time()
        try:
            code = await self._acquire(
                keys=[token_key],
                args=[now, now - self._stale, self.per_key, holder, int(self._stale)],
            )
        except Exception as exc:  # Redis down: fall back, never fail open
            self._limiter.mark_degraded(type(exc).__name__)
            async with super().hold(key):
                yield
            return
        if code == 2:
            raise self._key_full()
        # Count locally too, for the in-flight gauge and graceful shutdown.
        self._held += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._held -= 1
            if self._held == 0:
                self._idle.set()
            # If Redis fails now, the stale bound frees the slot later.
            with contextlib.suppress(Exception):
                await self._redis.zrem(token_key, holder)
