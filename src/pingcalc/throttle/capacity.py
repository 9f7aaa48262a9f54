"""Concurrency caps: at most `total` holders at once and `per_key` per key; full means refuse now.

No queue: a full cap answers at once (429 for the key's own cap, 503 for the process's), so
slow work such as pings cannot pile up waiting coroutines (T1499).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from pingcalc.throttle.errors import CapacityError
from pingcalc.throttle.redis_link import RedisLink

# Atomic acquire on one sorted set (a key's holders on every replica), holder ids scored by
# start time. Entries older than the stale bound are dropped first, so a crashed replica's
# slots free themselves.
_ACQUIRED = 0
_KEY_FULL = 2
_ACQUIRE = f"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {_KEY_FULL} end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {_ACQUIRED}
"""
# A holder older than this is presumed gone (its replica crashed) and its slot is freed.
STALE_HOLDER_SECONDS = 60.0
# The sorted set's own expiry (EXPIRE takes whole seconds).
STALE_TTL = int(STALE_HOLDER_SECONDS)


class ConcurrencyCap:
    """Per-process cap: `total` holders, `per_key` per key."""

    def __init__(self, total: int, per_key: int, *, name: str) -> None:
        self.total = total
        self.per_key = per_key
        self.name = name
        self._held = 0
        self._by_key: Counter[str] = Counter()

    @property
    def in_flight(self) -> int:
        return self._held

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for `key` for the duration of the block, or raise CapacityError."""
        self._check_total()
        if self._by_key[key] >= self.per_key:
            raise self._key_full()
        self._by_key[key] += 1
        try:
            with self._holding():
                yield
        finally:
            self._by_key[key] -= 1
            if self._by_key[key] <= 0:
                del self._by_key[key]

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        """Count one holder of this process (the in-flight gauge and the total cap)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1

    def _check_total(self) -> None:
        if self._held >= self.total:
            raise CapacityError(
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


class SharedConcurrencyCap(ConcurrencyCap):
    """The per-key cap counted in Redis, so it holds across workers and replicas.

    The total cap stays per process: it protects each process's own sockets and memory, and
    a fleet-wide total would shrink as replicas are added. When Redis fails, the per-process
    cap takes over: still bounded, not shared.
    """

    def __init__(self, total: int, per_key: int, *, name: str, link: RedisLink) -> None:
        super().__init__(total, per_key, name=name)
        self._link = link
        self._acquire = link.script(_ACQUIRE)
        self._prefix = f"pingcalc:inflight:{name}:key:"

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold a slot counted in Redis, or in this process while Redis is down."""
        if not await self._link.usable():
            async with super().hold(key):
                yield
            return
        self._check_total()
        holder = uuid.uuid4().hex
        redis_key = self._prefix + key
        now = time.time()
        try:
            code = await self._acquire(
                keys=[redis_key],
                args=[now, now - STALE_HOLDER_SECONDS, self.per_key, holder, STALE_TTL],
            )
        except Exception as exc:  # Redis down: fall back, never fail open
            self._link.failed(exc)
            async with super().hold(key):
                yield
            return
        if code == _KEY_FULL:
            raise self._key_full()
        try:
            with self._holding():
                yield
        finally:
            # If Redis fails now, the stale bound frees the slot later.
            with contextlib.suppress(Exception):
                await self._link.client.zrem(redis_key, holder)
