"""Rate limits as a GCRA per (limit, key): in this process's memory, or shared in Redis.

The generic cell rate algorithm keeps one number per key, the theoretical arrival time
(TAT) of the next event: admitting an event moves it `interval` further; an event is
refused when that would put the TAT more than a `period` ahead of now. So a key costs one
float (memory) or one short-lived string (Redis), whatever its rate, and `Retry-After` is
exact. In Redis the whole decision is one Lua script on the server's clock: atomic across
replicas, so N requests spread over any number of replicas admit exactly the budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from pingcalc.throttle.rate import Rate
from pingcalc.throttle.redis_link import RedisLink

# Keys remembered per limit in memory. A key costs about 150 bytes; past the bound the
# expired keys (whose TAT is past, equivalent to no entry) are dropped first, then the oldest
# ones, so a flood of distinct addresses cannot grow memory without bound (T1499). An
# evicted key starts again with a full budget: the bound is far above the distinct clients
# one period sees, so only a flood of more than this many addresses can get that far.
MAX_KEYS_PER_LIMIT = 50_000
# Share of the table dropped when no key has expired (amortises the sweep).
_EVICT_FRACTION = 0.01

# One GCRA step on Redis' own clock, in microseconds (doubles hold them exactly until 2255).
# Returns 0 when admitted, else the microseconds until one more event would be.
_GCRA = """
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
if next_tat - now > period then return math.max(1, math.ceil(next_tat - period - now)) end
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return 0
"""
_REDIS_PREFIX = "pingcalc:gcra:"


@dataclass(frozen=True, slots=True)
class Limit:
    """A named rate: `name` keeps the identities of different limits apart."""

    name: str
    rate: Rate


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit: admitted, or refused with the seconds to wait."""

    allowed: bool
    retry_after: int = 0


ALLOWED = Decision(True)


class RateLimiter:
    """GCRA limits in memory, or in Redis with a per-process fallback while Redis is down."""

    def __init__(
        self,
        link: RedisLink | None = None,
        *,
        enabled: bool = True,
        max_keys: int = MAX_KEYS_PER_LIMIT,
    ) -> None:
        self.enabled = enabled
        self.link = link
        self.max_keys = max_keys
        self._tables: dict[str, dict[str, float]] = {}
        self._gcra = link.script(_GCRA) if link is not None else None

    @property
    def shared(self) -> bool:
        """Whether counts are shared through Redis (when it answers)."""
        return self.link is not None

    @property
    def degraded(self) -> bool:
        return self.link is not None and self.link.degraded

    async def hit(self, limit: Limit, key: str) -> Decision:
        """Count one event of `key` against `limit`; say whether it may proceed."""
        if not self.enabled:
            return ALLOWED
        link = self.link
        if link is not None and self._gcra is not None and await link.usable():
            rate = limit.rate
            try:
                wait_us = await self._gcra(
                    keys=[_REDIS_PREFIX + limit.name + ":" + key],
                    args=[int(rate.period * 1e6), rate.interval * 1e6],
                )
            except Exception as exc:  # a Redis failure must neither 500 nor lift the limit
                link.failed(exc)
            else:
                return ALLOWED if not wait_us else Decision(False, math.ceil(int(wait_us) / 1e6))
        return self.hit_here(limit, key, time.monotonic())

    def hit_here(self, limit: Limit, key: str, now: float) -> Decision:
        """One GCRA step in this process's memory at time `now`."""
        table = self._tables.get(limit.name)
        if table is None:
            table = self._tables[limit.name] = {}
        rate = limit.rate
        tat = table.get(key, now)
        if tat < now:
            tat = now
        next_tat = tat + rate.interval
        # The tolerance absorbs float rounding: `count` events at one instant must all pass.
        if next_tat - now > rate.period * (1 + 1e-9):
            return Decision(False, max(1, math.ceil(next_tat - rate.period - now)))
        if len(table) >= self.max_keys and key not in table:
            self._make_room(table, now)
        table[key] = next_tat
        return ALLOWED

    def keys_held(self) -> int:
        """How many keys the in-memory tables hold (memory bound tests and metrics)."""
        return sum(len(table) for table in self._tables.values())

    def _make_room(self, table: dict[str, float], now: float) -> None:
        expired = [key for key, tat in table.items() if tat <= now]
        if not expired:
            expired = list(table)[: max(1, int(len(table) * _EVICT_FRACTION))]
        for key in expired:
            del table[key]

    async def reachable(self) -> bool:
        """Whether the configured storage answers now; memory always does."""
        return self.link is None or await self.link.reachable()
