"""The in-process rate limiter: exact moving windows, Retry-After, disabled means disabled."""

from __future__ import annotations

import asyncio

from pingcalc.limits import RateLimiter


def test_rate_limit_refuses_past_the_limit_and_admits_others() -> None:
    """The 4th hit in the window is refused with Retry-After; another identity passes (T1499)."""

    async def scenario() -> tuple[list[bool], int, bool]:
        limiter = RateLimiter("memory://")
        own = [(await limiter.hit("3/minute", "token", "a")).allowed for _ in range(3)]
        refused = await limiter.hit("3/minute", "token", "a")
        other = (await limiter.hit("3/minute", "token", "b")).allowed
        return [*own, refused.allowed], refused.retry_after, other

    own, retry_after, other = asyncio.run(scenario())
    assert own == [True, True, True, False]
    assert 1 <= retry_after <= 60
    assert other is True


def test_test_does_not_count_a_hit() -> None:
    """`test` looks without counting, so checking the failure budget does not consume it."""

    async def scenario() -> list[bool]:
        limiter = RateLimiter("memory://")
        looks = [(await limiter.test("2/minute", "authfail", "ip")).allowed for _ in range(5)]
        await limiter.hit("2/minute", "authfail", "ip")
        await limiter.hit("2/minute", "authfail", "ip")
        return [*looks, (await limiter.test("2/minute", "authfail", "ip")).allowed]

    assert asyncio.run(scenario()) == [True] * 5 + [False]


def test_memory_storage_is_always_reachable_and_not_shared() -> None:
    """memory:// needs no server: readiness never depends on it."""
    limiter = RateLimiter("memory://")
    assert not limiter.shared and asyncio.run(limiter.reachable())
