"""Live ping replies through the real server: streamed as they happen, and no way to hold a slot.

`pingcalc serve` pings 127.0.0.1 with the system `ping` (the only echoes here go to loopback).
TM-07 / TM-08: a stream keeps its concurrency slot until it ends, and a client that walks
away mid-stream stops the echoes (the `ping` process is killed) and frees its slot at once,
so a client cannot pile up pings by opening streams and leaving them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pingcalc.ping.selection import find_ping
from tests_support import LiveServer, audit_records, log_records

URL = "/api/v1/ping"
NDJSON = "application/x-ndjson"


@pytest.fixture
def pinging_server(server_factory: Callable[..., LiveServer]) -> Callable[..., LiveServer]:
    """Start a server whose echoes are sent by `ping`, `interval` seconds apart."""
    if find_ping() is None:
        pytest.skip("no ping binary (install iputils-ping)")

    def start(interval: float, **env: str) -> LiveServer:
        return server_factory(
            env={
                "PINGCALC_PING_BACKEND": "subprocess",
                "PINGCALC_PING_INTERVAL_SECONDS": str(interval),
                **env,
            }
        )

    return start


def _descendants(pid: int) -> list[str]:
    """The command lines of every process below `pid`."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                frontier.append(child)
                try:
                    found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" "))
                except OSError:
                    continue
    return [cmd.decode(errors="replace") for cmd in found]


def test_server_streams_each_reply_as_it_happens_then_the_result(
    pinging_server: Callable[..., LiveServer],
) -> None:
    """Lines arrive while the ping runs; the last equals the ordinary JSON answer's shape."""
    server = pinging_server(0.5)
    body = {"target": "127.0.0.1", "count": 3}
    stamped: list[tuple[float, dict[str, Any]]] = []
    with server.client("pinger") as client:
        started = time.monotonic()
        with client.stream("POST", URL, json=body, headers={"Accept": NDJSON}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == NDJSON
            assert response.headers["x-request-id"]
            for line in response.iter_lines():
                if line:
                    stamped.append((time.monotonic() - started, json.loads(line)))
        plain = client.post(URL, json=body)
    assert plain.status_code == 200
    events = [item for _, item in stamped[:-1]]
    assert [(e["event"], e["seq"]) for e in events] == [("reply", 1), ("reply", 2), ("reply", 3)]
    result = stamped[-1][1]
    assert set(result) == set(plain.json()) and "event" not in result
    assert (result["target"], result["sent"], result["received"]) == ("127.0.0.1", 3, 3)
    assert [r["seq"] for r in result["replies"]] == [1, 2, 3]
    # The first reply was read a whole second (two intervals) before the result.
    assert stamped[-1][0] - stamped[0][0] > 0.7
    assert len([r for r in audit_records(server.log_text()) if r["event"] == "ping"]) == 2


def test_client_leaving_mid_stream_stops_the_echoes_and_frees_its_slot(
    pinging_server: Callable[..., LiveServer],
) -> None:
    """TM-07: per-token cap 1. While a stream is open a second ping is 429; once its client
    leaves, `ping` is killed, the slot is free and a new ping is admitted at once."""
    server = pinging_server(1.0, PINGCALC_PING_MAX_PER_TOKEN="1")
    one = {"target": "127.0.0.1", "count": 1}
    with server.client("pinger") as other:
        with (
            server.client("pinger") as client,
            client.stream(
                "POST", URL, json={"target": "127.0.0.1", "count": 5}, headers={"Accept": NDJSON}
            ) as response,
        ):
            lines = response.iter_lines()  # kept: dropping it would close the connection
            first = json.loads(next(lines))
            assert (first["event"], first["seq"]) == ("reply", 1)
            assert any("ping" in cmd for cmd in _descendants(server.process.pid))
            held = other.post(URL, json=one)
            assert held.status_code == 429 and held.json()["reason"] == "ping_per_token_capacity"
        left = time.monotonic()  # the connection is closed: four echoes were still to come
        cancelled: list[dict[str, object]] = []
        while not cancelled and time.monotonic() - left < 3:
            cancelled = [
                r
                for r in audit_records(server.log_text())
                if r["event"] == "ping" and r["outcome"] == "cancelled"
            ]
            time.sleep(0.02)
        freed_after = time.monotonic() - left
        assert cancelled and cancelled[0]["reason"] == "client_disconnected"
        assert freed_after < 1.0, freed_after  # not the 4 s the remaining echoes would take
        assert not [cmd for cmd in _descendants(server.process.pid) if "ping" in cmd]
        again = other.post(URL, json=one)
        assert again.status_code == 200, again.text
    records = audit_records(server.log_text())
    outcomes = [
        (r["event"], r.get("outcome"))
        for r in records
        if r["event"].startswith(("ping", "capacity"))
    ]
    assert outcomes == [
        ("ping_started", "started"),
        ("capacity_rejected", "rejected"),
        ("ping", "cancelled"),
        ("ping", "success"),
    ]
    log = log_records(server.log_text())
    access = [r for r in log if r.get("event") == "access" and r.get("path") == URL]
    assert any(r.get("reason") == "client_disconnected" for r in access), access
    httpx.get(server.url + "/healthz", timeout=5).raise_for_status()
