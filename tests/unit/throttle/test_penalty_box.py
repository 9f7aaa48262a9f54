"""The penalty box: addresses over their per-IP limit wait at the edge, for a bounded time."""

from __future__ import annotations

import pytest

from pingcalc.throttle import PenaltyBox


def test_address_waits_until_its_time_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A boxed address is refused for exactly its Retry-After, then passes (T1499)."""
    now = [1000.0]
    monkeypatch.setattr("pingcalc.throttle.penalty.time.monotonic", lambda: now[0])
    box = PenaltyBox()
    box.add("198.51.100.7", 30)
    assert box.retry_after("198.51.100.7") == 30
    assert box.retry_after("198.51.100.8") == 0
    now[0] += 29.5
    assert box.retry_after("198.51.100.7") == 1
    now[0] += 0.5
    assert box.retry_after("198.51.100.7") == 0


def test_box_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spoofing many addresses cannot grow the box past its bound; expired entries make room."""
    now = [0.0]
    monkeypatch.setattr("pingcalc.throttle.penalty.time.monotonic", lambda: now[0])
    box = PenaltyBox(max_entries=3)
    for n in range(5):
        box.add(f"10.0.0.{n}", 10)
    assert [box.retry_after(f"10.0.0.{n}") > 0 for n in range(5)] == [True] * 3 + [False] * 2
    now[0] = 11.0
    box.add("10.0.0.9", 10)
    assert box.retry_after("10.0.0.9") == 10
