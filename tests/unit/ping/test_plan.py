"""The shared ping plan: one count default and bound, one deadline rule, one family rule."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from typing import Any

import pytest

from ping_fakes import RecordingBackend
from pingcalc.ping import (
    Destination,
    PingEvent,
    PingPlan,
    PingResult,
    PlanError,
    Reply,
    SystemResolver,
    TargetPolicy,
    check_name,
    deadline_for,
    resolve_target,
)
from pingcalc.settings import Settings

LOOPBACK = ip_address("127.0.0.1")


def test_plan_takes_the_default_count_and_the_deadline_rule(settings: Settings) -> None:
    """No count means the configured default; the deadline is derived, never chosen."""
    plan = PingPlan.from_settings(settings)
    echoes = plan.echoes
    assert echoes.count == settings.ping_default_count and plan.family is None
    assert echoes.deadline == deadline_for(
        echoes.count, timeout=settings.ping_timeout_seconds, interval=settings.ping_interval_seconds
    )
    assert PingPlan.from_settings(settings, count=5, family=6).family == 6


@pytest.mark.parametrize(
    ("count", "family", "field"),
    [
        (0, None, "count"),
        (6, None, "count"),
        (-1, None, "count"),
        (True, None, "count"),
        ("3", None, "count"),
        (2.5, None, "count"),
        (3, 5, "family"),
        (3, True, "family"),
        (3, 0, "family"),
    ],
)
def test_plan_refuses_counts_and_families_out_of_bounds(
    count: Any, family: Any, field: str, settings: Settings
) -> None:
    """A count past the bound or a family other than 4/6 is a PlanError naming the field."""
    with pytest.raises(PlanError) as caught:
        PingPlan.from_settings(settings, count=count, family=family)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")


def test_ip_target_of_the_other_family_is_a_plan_error() -> None:
    """`family: 6` with an IPv4 address is a contradiction the client must resolve."""
    resolver = SystemResolver(timeout=1.0, max_in_flight=1)
    with pytest.raises(PlanError, match=r"127\.0\.0\.1 is an IPv4 address, not IPv6"):
        asyncio.run(resolve_target("127.0.0.1", policy=TargetPolicy(), resolver=resolver, family=6))


def test_result_json_has_a_name_only_for_names(settings: Settings) -> None:
    """An IP target's JSON is unchanged; a name's result adds `name` after `target`."""
    plan = PingPlan.from_settings(settings, count=2)
    backend = RecordingBackend()
    by_address = asyncio.run(plan.run(backend, Destination(LOOPBACK)))
    assert "name" not in by_address.to_dict() and by_address.name is None
    named = Destination(LOOPBACK, check_name("localhost"), (LOOPBACK,))
    by_name = asyncio.run(plan.run(backend, named))
    assert list(by_name.to_dict())[:2] == ["target", "name"]
    assert by_name.to_dict()["name"] == "localhost"
    assert named.to_dict() == {
        "address": "127.0.0.1",
        "name": "localhost",
        "resolved": ["127.0.0.1"],
        "resolved_count": 1,
    }


def test_streamed_result_equals_the_result_of_run(settings: Settings) -> None:
    """The stream's last item is what `run` returns; before it, one event per echo in order."""
    plan = PingPlan.from_settings(settings, count=3)
    named = Destination(LOOPBACK, check_name("localhost"), (LOOPBACK,))

    async def both() -> tuple[list[PingEvent | PingResult], PingResult]:
        items = [item async for item in plan.stream(RecordingBackend(), named)]
        return items, await plan.run(RecordingBackend(), named)

    items, result = asyncio.run(both())
    assert items[:-1] == [Reply(1, 0.05), Reply(2, 0.1), Reply(3, 0.05 * 3)]
    assert items[-1] == result and result.name == "localhost"
