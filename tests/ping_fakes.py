"""Test doubles for the ping engine: a backend that sends nothing, and the sysctl switch.

`RecordingBackend` lets policy and injection tests run through the real HTTP stack while
proving that no packet was sent: every call is recorded, none reaches the network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from pingcalc.api.edge import Edge
from pingcalc.app import create_app
from pingcalc.audit import Auditor, StdoutSink
from pingcalc.ping import Address, Echoes, EventSink, Lost, PingBackend, PingResult, Reply
from pingcalc.services import Services, build_services
from pingcalc.settings import Settings

PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
# Every group may open datagram ICMP sockets: what Docker sets inside containers.
OPEN_RANGE = "0 2147483647"

# The backend a FakeApp was built with: tests read a fake's own fields (`calls`) typed.
B = TypeVar("B", bound=PingBackend)


@dataclass(frozen=True)
class PingCall:
    """The arguments of one backend call."""

    address: Address
    echoes: Echoes


@dataclass
class RecordingBackend(PingBackend):
    """Records each call and answers with every echo replied; never sends a packet.

    `delay` is waited before the first event, `spacing` between events (live streams);
    `cancelled` counts calls stopped by cancellation (a client that went away).
    """

    delay: float = 0.0
    answer: bool = True
    spacing: float = 0.0
    name: str = "fake"
    calls: list[PingCall] = field(default_factory=list)
    cancelled: int = 0

    async def ping(
        self, address: Address, echoes: Echoes, on_event: EventSink | None = None
    ) -> PingResult:
        self.calls.append(PingCall(address, echoes))
        count = echoes.count
        replies = [Reply(seq, 0.05 * seq) for seq in range(1, count + 1)] if self.answer else []
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            for seq in range(1, count + 1):
                if seq > 1 and self.spacing:
                    await asyncio.sleep(self.spacing)
                if on_event is not None:
                    on_event(replies[seq - 1] if self.answer else Lost(seq))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return PingResult.build(address, sent=count, replies=replies, backend=self.name)

    def pinged(self) -> list[str]:
        """The addresses of the calls so far, in order, as text."""
        return [str(call.address) for call in self.calls]


@dataclass
class FakeApp(Generic[B]):
    """An app whose services use `backend`, with its audit events captured."""

    app: Edge
    backend: B
    audit_stream: io.StringIO

    def audit_events(self, event: str | None = None) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in self.audit_stream.getvalue().splitlines()]
        return [r for r in records if event is None or r.get("event") == event]


# The usual fake app: its backend records calls and sends nothing.
RecordingApp = FakeApp[RecordingBackend]


def services_with(
    settings: Settings, backend: PingBackend, audit: Auditor | None = None
) -> Services:
    """The real services for `settings`, with `backend` (and `audit`, if given) in place of
    the ones built from the settings; the gate is rebuilt over them."""
    services = build_services(settings)
    if audit is None:
        return dataclasses.replace(services, pinger=backend)
    return dataclasses.replace(services, pinger=backend, audit=audit)


def app_with_backend(settings: Settings, backend: B) -> FakeApp[B]:
    """The real application, with `backend` in place of the selected one."""
    stream = io.StringIO()
    services = services_with(settings, backend, Auditor([StdoutSink(stream)]))
    return FakeApp(create_app(settings, services=services), backend, stream)


def ping_script(directory: Path, body: str = "exit 0\n") -> str:
    """The path of an executable shell script `ping` in `directory` that runs `body`: a
    stand-in for the system ping that the subprocess backend and selection accept."""
    script = directory / "ping"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


@contextmanager
def datagram_icmp_allowed() -> Iterator[None]:
    """Let every group open datagram ICMP sockets for the block, then restore the old range.

    Needs root (the host default `1 0` allows nobody). Skips otherwise; in CI a skip fails.
    """
    try:
        old = PING_GROUP_RANGE.read_text().split()
    except OSError as exc:
        pytest.skip(f"cannot read {PING_GROUP_RANGE}: {exc}")
    low, high = int(old[0]), int(old[1])
    if low <= os.getgid() <= high:
        yield  # already permitted for us (e.g. inside a container)
        return
    try:
        PING_GROUP_RANGE.write_text(OPEN_RANGE)
    except OSError as exc:
        pytest.skip(f"cannot set {PING_GROUP_RANGE} (needs root): {exc}")
    try:
        yield
    finally:
        PING_GROUP_RANGE.write_text(" ".join(old))


@contextmanager
def ping_group_range(value: str) -> Iterator[None]:
    """Set `net.ipv4.ping_group_range` to `value` for the block; the old value comes back after.

    Needs root; skips otherwise (in CI a skip fails).
    """
    try:
        old = PING_GROUP_RANGE.read_text().strip()
        PING_GROUP_RANGE.write_text(value)
    except OSError as exc:
        pytest.skip(f"cannot set {PING_GROUP_RANGE} (needs root): {exc}")
    try:
        yield
    finally:
        PING_GROUP_RANGE.write_text(old)
