"""Rate limits as a GCRA in memory: exact budgets, exact Retry-After, bounded memory (T1499)."""

from __future__ import annotations

import asyncio

import pytest

from pingcalc.throttle import Limit, Rate, RateLimiter, RateSyntaxError


def per(text: str, name: str = "ip") -> Limit:
    return Limit(name, Rate.parse(text))


def test_a_burst_gets_exactly_the_budget_and_an_exact_retry_after() -> None:
    """The 4th hit of a 3/minute budget is refused and told to wait 20 s, the refill of one."""
    limiter = RateLimiter()
    limit = per("3/minute")
    decisions = [limiter.hit_here(limit, "a", 1000.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[3].retry_after == 20


def test_the_budget_refills_evenly_not_at_a_window_boundary() -> None:
    """No instant admits twice the budget: after a full burst, one event per interval passes."""
    limiter = RateLimiter()
    limit = per("60/minute")
    now = 5000.0
    assert all(limiter.hit_here(limit, "a", now).allowed for _ in range(60))
    assert not limiter.hit_here(limit, "a", now + 0.5).allowed  # a fixed window's edge
    assert limiter.hit_here(limit, "a", now + 1.0).allowed  # one interval later: one more
    assert not limiter.hit_here(limit, "a", now + 1.0).allowed
    # Over any 60 s after the burst, at most one event per second gets through.
    admitted = sum(limiter.hit_here(limit, "a", now + 1 + t / 10).allowed for t in range(1, 601))
    assert admitted == 60


def test_other_keys_and_other_limits_are_counted_apart() -> None:
    """One client's budget is its own; the same key under another limit is another count."""
    limiter = RateLimiter()
    ip, token = per("1/minute", "ip"), per("1/minute", "token")
    assert limiter.hit_here(ip, "10.0.0.1", 0.0).allowed
    assert not limiter.hit_here(ip, "10.0.0.1", 0.0).allowed
    assert limiter.hit_here(ip, "10.0.0.2", 0.0).allowed
    assert limiter.hit_here(token, "10.0.0.1", 0.0).allowed


def test_memory_is_bounded_whatever_the_number_of_keys() -> None:
    """A flood of distinct keys cannot grow the table past its bound; expired keys go first."""
    limiter = RateLimiter(max_keys=100)
    limit = per("2/minute")
    for n in range(1000):
        limiter.hit_here(limit, f"198.51.100.{n}", 0.0)
    assert limiter.keys_held() <= 100
    # Once their budgets have refilled, old keys are dropped before any live one.
    assert limiter.hit_here(limit, "live", 100.0).allowed
    assert limiter.hit_here(limit, "live", 100.0).allowed
    for n in range(200):
        limiter.hit_here(limit, f"203.0.113.{n}", 100.0 + n * 0.001)
    assert limiter.keys_held() <= 100


def test_hit_awaits_the_same_decision_in_memory() -> None:
    """The async entry point counts in memory when there is no Redis."""

    async def scenario() -> list[bool]:
        limiter = RateLimiter()
        limit = per("2/minute")
        return [(await limiter.hit(limit, "k")).allowed for _ in range(3)]

    assert asyncio.run(scenario()) == [True, True, False]


def test_disabled_limiter_admits_everything() -> None:
    """PINGCALC_RATE_LIMIT_ENABLED=false really disables counting (and check fails it)."""

    async def scenario() -> bool:
        limiter = RateLimiter(enabled=False)
        return all([(await limiter.hit(per("1/minute"), "k")).allowed for _ in range(10)])

    assert asyncio.run(scenario())


def test_memory_storage_is_always_reachable_and_not_shared() -> None:
    """Without Redis, readiness never depends on the limiter."""
    limiter = RateLimiter()
    assert not limiter.shared and asyncio.run(limiter.reachable())


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("300/minute", 300, 60.0),
        ("20 per minute", 20, 60.0),
        ("10/5 seconds", 10, 5.0),
        ("1000000/second", 1_000_000, 1.0),
        ("2/Hour", 2, 3600.0),
        ("1/day", 1, 86400.0),
    ],
)
def test_rates_parse(text: str, count: int, period: float) -> None:
    """The forms the settings accept."""
    rate = Rate.parse(text)
    assert (rate.count, rate.period) == (count, period)


@pytest.mark.parametrize("text", ["", "0/minute", "-1/minute", "ten/minute", "5/fortnight", "5"])
def test_bad_rates_are_refused_with_the_expected_form(text: str) -> None:
    """A typo in a rate is a clear configuration error, never a silent default."""
    with pytest.raises(RateSyntaxError, match="60/minute"):
        Rate.parse(text)
