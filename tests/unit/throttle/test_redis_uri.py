"""Redis storage URIs: timeouts always present, passwords never shown, every scheme redis knows."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import parse_url

from pingcalc.throttle.redis_link import is_redis_uri, redact_uri, with_timeouts


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "redis://:pw@cache:6379/0",
            "redis://:pw@cache:6379/0?socket_timeout=1&socket_connect_timeout=1",
        ),
        (
            "unix:///run/redis/redis.sock?db=0",
            "unix:///run/redis/redis.sock?db=0&socket_timeout=1&socket_connect_timeout=1",
        ),
        (
            "unix://pingcalc:pw@/run/redis/redis.sock?db=0&socket_timeout=3",
            "unix://pingcalc:pw@/run/redis/redis.sock?db=0&socket_timeout=3"
            "&socket_connect_timeout=1",
        ),
    ],
)
def test_a_storage_uri_always_carries_socket_timeouts_and_stays_one_redis_parses(
    uri: str, expected: str
) -> None:
    """A Redis that accepts but never answers must not hang requests: 1 s unless the operator
    chose otherwise. A socket URI keeps its `//` (without it redis refuses the scheme)."""
    assert with_timeouts(uri) == expected
    options: dict[str, object] = dict(parse_url(with_timeouts(uri)))
    assert options["socket_connect_timeout"] == 1.0


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("redis://pingcalc:s3cret@cache:6379/0", "redis://pingcalc:***@cache:6379/0"),
        (
            "unix://pingcalc:s3cret@/run/redis/redis.sock?db=0",
            "unix://pingcalc:***@/run/redis/redis.sock?db=0",
        ),
        ("unix:///run/redis/redis.sock", "unix:///run/redis/redis.sock"),
    ],
)
def test_a_storage_uri_is_logged_without_its_password(uri: str, shown: str) -> None:
    """Start-up, `pingcalc check` and the degraded/recovered events show the URI: never its
    password, over TCP or a socket."""
    assert is_redis_uri(uri)
    assert redact_uri(uri) == shown
    assert "s3cret" not in redact_uri(uri)


def test_memory_storage_is_not_redis() -> None:
    """`memory://` counts per process: no Redis client is built for it."""
    assert not is_redis_uri("memory://")
