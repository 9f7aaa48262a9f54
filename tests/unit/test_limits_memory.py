"""The in-memory rate-limit storage: sweeping throttled for speed, limits exactly as upstream."""

from __future__ import annotations

import asyncio

import pytest
from limits.aio.storage import MemoryStorage

from pingcalc.limits import RateLimiter, SweptMemoryStorage


def test_swept_storage_overrides_upstream_sweep_scheduler() -> None:
    """The override must hook the method upstream calls, or a new `limits` silently undoes it."""
    for name in ("_MemoryStorage__schedule_expiry", "_MemoryStorage__expire_events"):
        assert hasattr(MemoryStorage, name)
        assert name in vars(SweptMemoryStorage)


def test_swept_storage_sweeps_at_most_once_per_interval() -> None:
    """A flood of hits starts one sweep, not one worker-thread hand-off per hit (DoS cost)."""

    async def scenario() -> int:
        storage = SweptMemoryStorage()
        started = 0
        original = storage._MemoryStorage__schedule_expiry  # type: ignore[attr-defined]

        async def counting() -> None:
            nonlocal started
            before = storage.timer
            await original()
            started += storage.timer is not before

        storage._MemoryStorage__schedule_expiry = counting  # type: ignore[attr-defined]
        limiter = RateLimiter("memory://")
        limiter._memory = limiter._primary = storage
        for _ in range(200):
            await limiter.hit("1000/minute", "token", "flood")
            await asyncio.sleep(0)  # as between requests: upstream would sweep ~100 times
        return started

    assert asyncio.run(scenario()) == 1


def test_rate_limit_still_refuses_past_the_limit_and_admits_others() -> None:
    """Throttled sweeping keeps the moving window exact: the 4th hit is refused, others pass."""

    async def scenario() -> tuple[list[bool], bool]:
        limiter = RateLimiter("memory://")
        own = [(await limiter.hit("3/minute", "token", "a")).allowed for _ in range(4)]
        other = (await limiter.hit("3/minute", "token", "b")).allowed
        return own, other

    own, other = asyncio.run(scenario())
    assert own == [True, True, True, False]
    assert other is True


def test_sweep_drops_expired_entries_on_the_loop_without_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Expired entries are freed (memory stays bounded) without a worker thread or a lock wait."""

    def no_threads(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the sweep must not hand work to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)

    async def scenario() -> tuple[list[str], int]:
        storage = SweptMemoryStorage()
        await storage.acquire_entry("gone", 5, expiry=0)  # expires at once
        await storage.acquire_entry("kept", 5, expiry=60)
        await storage._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        return sorted(storage.events), len(storage.events["kept"])

    assert asyncio.run(scenario()) == (["kept"], 1)
