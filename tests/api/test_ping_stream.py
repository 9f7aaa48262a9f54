"""Live ping replies (`Accept: application/x-ndjson`), in process, with every ASGI message timed.

A small ASGI driver records when each part of the answer is sent and can disconnect the
client at any point, which the test clients cannot do. The recording backend sends nothing;
its `spacing` makes the echoes arrive over time. Threats: TM-07/TM-08 (a stream holds its
concurrency slot until it ends or its client goes away), TM-11 (one audit record per ping).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ping_fakes import RecordingApp, RecordingBackend, app_with_backend, services_with
from pingcalc.api.asgi import Message, Scope
from pingcalc.api.edge import Edge
from pingcalc.app import create_app
from pingcalc.audit import Auditor, StdoutSink
from pingcalc.ping import UnavailableBackend
from pingcalc.settings import Settings
from tests_support import Tokens

URL = "/api/v1/ping"
NDJSON = "application/x-ndjson"
# Seconds between the fake backend's echoes: wide enough to tell "as it happens" from "at
# the end" on a busy machine.
SPACING = 0.25


@dataclass
class Answer:
    """What the app sent for one request: status, headers, and each body part with its time."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    parts: list[tuple[float, bytes]] = field(default_factory=list)
    complete: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set at each part

    @property
    def body(self) -> bytes:
        return b"".join(part for _, part in self.parts)

    @property
    def text(self) -> str:
        return self.body.decode()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.body.splitlines()]


async def call(
    app: Edge,
    token: str,
    body: dict[str, Any],
    *,
    accept: str | None = NDJSON,
    leave: asyncio.Event | None = None,
    answer: Answer | None = None,
) -> Answer:
    """POST `body` to the ping route, filling `answer` as parts arrive; setting `leave`
    disconnects the client (the server then sees `http.disconnect`)."""
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    if accept is not None:
        headers.append((b"accept", accept.encode()))
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "http_version": "1.1",
        "query_string": b"",
    }
    answer = answer if answer is not None else Answer()
    gone = leave if leave is not None else asyncio.Event()  # the client left, or the end
    started = time.monotonic()
    read = False

    async def receive() -> Message:
        nonlocal read
        if not read:
            read = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if gone.is_set() and not answer.complete:
            return  # a server drops what is sent to a closed connection
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            return
        answer.parts.append((time.monotonic() - started, message.get("body", b"")))
        answer.arrived.set()
        if not message.get("more_body", False):
            answer.complete = True
            gone.set()

    await app(scope, receive, send)
    return answer


@pytest.fixture
def slow(settings: Settings) -> RecordingApp:
    return app_with_backend(settings, RecordingBackend(spacing=SPACING))


def test_each_echo_is_sent_as_it_happens_then_the_ordinary_result(
    slow: RecordingApp, tokens: Tokens
) -> None:
    """Three event lines spaced like the echoes, then a line equal to the non-streamed answer."""
    streamed = asyncio.run(call(slow.app, tokens.secrets["pinger"], {"target": "127.0.0.1"}))
    plain = asyncio.run(
        call(slow.app, tokens.secrets["pinger"], {"target": "127.0.0.1"}, accept=None)
    )
    assert streamed.status == 200 and streamed.complete
    assert streamed.headers["content-type"] == NDJSON
    assert "content-length" not in streamed.headers
    assert streamed.headers["x-content-type-options"] == "nosniff"
    assert streamed.headers["x-request-id"]
    *events, result = streamed.lines()
    assert events == [
        {"event": "reply", "seq": 1, "rtt_ms": 0.05},
        {"event": "reply", "seq": 2, "rtt_ms": 0.1},
        {"event": "reply", "seq": 3, "rtt_ms": 0.15},
    ]
    assert result == json.loads(plain.body)
    assert plain.headers["content-type"] == "application/json"
    # One part per line, each sent when its echo happened, not all at the end.
    times = [t for t, _ in streamed.parts]
    assert len(times) == 4
    assert times[1] - times[0] >= SPACING * 0.8 and times[2] - times[1] >= SPACING * 0.8
    assert times[3] - times[0] >= 2 * SPACING * 0.8
    assert [e["event"] for e in slow.audit_events() if e["event"].startswith("ping")] == [
        "ping_started",
        "ping",
        "ping",
    ]  # one result record per request, streamed or not; a stream is on record before it starts


@pytest.mark.parametrize(
    "accept",
    [None, "application/json", "*/*", "application/*", f"{NDJSON};q=0", "application/x-ndjsonx"],
)
def test_without_asking_for_ndjson_by_name_the_answer_is_unchanged(
    accept: str | None, slow: RecordingApp, tokens: Tokens
) -> None:
    """Only an Accept naming application/x-ndjson (weight above 0) gets the live form."""
    answer = asyncio.run(
        call(slow.app, tokens.secrets["pinger"], {"target": "::1", "count": 1}, accept=accept)
    )
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    assert len(answer.parts) == 1 and json.loads(answer.body)["target"] == "::1"


def test_ndjson_among_other_types_is_streamed(slow: RecordingApp, tokens: Tokens) -> None:
    """`application/json;q=0.5, application/x-ndjson` asks for the stream by name."""
    accept = f"application/json;q=0.5, {NDJSON};q=1"
    answer = asyncio.run(
        call(slow.app, tokens.secrets["pinger"], {"target": "::1", "count": 1}, accept=accept)
    )
    assert answer.headers["content-type"] == NDJSON and len(answer.lines()) == 2


def test_refusals_before_the_first_echo_keep_their_own_status(
    settings: Settings, tokens: Tokens
) -> None:
    """A denied target and a backend that cannot ping answer 403 and 503 problems, not 200."""
    cause = "/opt/internal/ping: exit 2 (uid 4242)"
    fake = app_with_backend(settings, UnavailableBackend(cause))
    token = tokens.secrets["pinger"]
    denied = asyncio.run(call(fake.app, token, {"target": "10.0.0.1"}))
    assert denied.status == 403
    assert denied.headers["content-type"] == "application/problem+json"
    unavailable = asyncio.run(call(fake.app, token, {"target": "127.0.0.1"}))
    assert unavailable.status == 503
    assert json.loads(unavailable.body)["type"] == "urn:pingcalc:problem:ping-unavailable"
    assert cause not in unavailable.text and "/opt/internal" not in unavailable.text
    assert [e["event"] for e in fake.audit_events()] == [
        "ping_rejected",
        "ping_started",
        "ping_failed",
    ]


class StartsFail(Auditor):
    """An auditor whose file fails from the `ping_started` record on (a disk just filled)."""

    def emit(self, event: str, **fields: Any) -> bool:
        return super().emit(event, **fields) and event != "ping_started"


def test_a_stream_that_cannot_be_put_on_record_is_refused_before_any_echo(
    settings: Settings, tokens: Tokens
) -> None:
    """The first audited action after the audit trail fails is a 503 even when it asks for
    live replies: no echo is sent, no reply is shown (AU-5, the attack pass's F6)."""
    backend = RecordingBackend(spacing=0.05)
    app = create_app(
        settings, services=services_with(settings, backend, StartsFail([StdoutSink(io.StringIO())]))
    )
    streamed = asyncio.run(call(app, tokens.secrets["pinger"], {"target": "127.0.0.1", "count": 2}))
    assert streamed.status == 503
    assert json.loads(streamed.body)["type"] == "urn:pingcalc:problem:audit-unavailable"
    assert backend.calls == []


class PingRecordsFail(Auditor):
    """An auditor that writes every record but the ping results (a disk filling mid-stream)."""

    def emit(self, event: str, **fields: Any) -> bool:
        if event == "ping":
            return False
        return super().emit(event, **fields)


def test_a_result_that_cannot_be_audited_ends_the_stream_with_a_problem(
    settings: Settings, tokens: Tokens
) -> None:
    """Fail-closed mid-stream: the lines sent stay, the last line is a 503 problem, not a result."""
    services = services_with(
        settings, RecordingBackend(spacing=0.05), PingRecordsFail([StdoutSink(io.StringIO())])
    )
    app = create_app(settings, services=services)
    token = tokens.secrets["pinger"]
    streamed = asyncio.run(call(app, token, {"target": "127.0.0.1", "count": 2}))
    assert streamed.status == 200 and streamed.complete
    *events, last = streamed.lines()
    assert [e["event"] for e in events] == ["reply", "reply"]
    assert last["status"] == 503 and last["type"] == "urn:pingcalc:problem:audit-unavailable"
    assert last["request_id"] == streamed.headers["x-request-id"] and "received" not in last
    plain = asyncio.run(call(app, token, {"target": "127.0.0.1", "count": 2}, accept=None))
    assert plain.status == 503
    assert json.loads(plain.body)["type"] == "urn:pingcalc:problem:audit-unavailable"


def test_a_client_that_leaves_mid_stream_frees_its_slot_at_once(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """TM-07: with a per-token cap of 1, a stream holds the slot until its client leaves; then
    the echoes stop and a new ping is admitted at once."""
    settings = make_settings(ping_max_per_token=1)
    fake = app_with_backend(settings, RecordingBackend(spacing=1.0))
    backend = fake.backend
    token = tokens.secrets["pinger"]

    async def scenario() -> tuple[Answer, Answer, Answer, float]:
        leave = asyncio.Event()
        streamed = Answer()
        stream = asyncio.ensure_future(
            call(fake.app, token, {"target": "127.0.0.1", "count": 5}, leave=leave, answer=streamed)
        )
        await streamed.arrived.wait()  # the first echo is reported; four more are 1 s apart
        refused = await call(fake.app, token, {"target": "127.0.0.1", "count": 1}, accept=None)
        leave.set()
        left = time.monotonic()
        await asyncio.wait_for(stream, 1)  # the handler ends at once, not after 4 s
        again = await call(fake.app, token, {"target": "127.0.0.1", "count": 1}, accept=None)
        return streamed, refused, again, time.monotonic() - left

    streamed, refused, again, seconds = asyncio.run(scenario())
    assert refused.status == 429  # the cap of 1 holds while the stream is open
    assert streamed.status == 200 and len(streamed.parts) == 1 and not streamed.complete
    assert again.status == 200 and seconds < 0.5  # admitted at once, not after 4 more echoes
    assert backend.cancelled == 1 and [c.echoes.count for c in backend.calls] == [5, 1]
    [cancelled] = [e for e in fake.audit_events("ping") if e["outcome"] == "cancelled"]
    assert cancelled["reason"] == "client_disconnected"
    assert (cancelled["reported"], cancelled["received"], cancelled["token"]) == (1, 1, "pinger")
    assert [e["outcome"] for e in fake.audit_events("ping")] == ["cancelled", "success"]
