"""Running the app under uvicorn, with a guarded HTTP protocol in front of httptools.

uvicorn's httptools protocol bounds neither a request's head (one connection streaming a
64 MB header grew the process by 64 MB) nor the time a client takes to send it, and never
closes a connection that sends nothing (slowloris). `GuardedProtocol` adds, per connection:

- a cap on the head's bytes and header count, answered 431 and closed, checked *before* the
  bytes reach the parser (which would buffer them);
- a read deadline from a request's first byte (or the connection's start) to its last
  byte: a head or body still trickling in then is closed (408 while the head is incomplete);
- the idle keep-alive deadline (uvicorn's own);
- a per-process connection cap and a per-client one: at the cap, a new connection evicts
  the oldest connection that is idle or still sending its request, never one being
  answered, so slow clients cannot hold every descriptor and a health check gets in;
- optionally, which peers may connect at all (`PINGCALC_CONNECT_ALLOW_IPS`): behind a proxy,
  nobody else reaches the server around it;
- fields after a chunked body (trailers) are never request headers.

`httptools` stays the parser: h11 caps headers too, but serves about half the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any, cast

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from pingcalc.api.exchange import RAW_HEAD, REFUSED
from pingcalc.api.forwarded import AddressSet, TrustedProxies
from pingcalc.api.headers import SECURITY_HEADERS, new_request_id
from pingcalc.api.problems import PROBLEM_MEDIA_TYPE, Problem
from pingcalc.gate import client_key
from pingcalc.logs import get_logger, write_event
from pingcalc.settings import Settings

log = get_logger("pingcalc.server")

# Descriptors kept free beyond the connection cap: the listening socket, log and audit
# files, the tokens file, ping sockets and Redis connections.
RESERVED_DESCRIPTORS = 64
# Requests one connection may queue behind the one being answered (HTTP/1.1 pipelining).
# Stops one read of thousands of tiny requests from queuing thousands of request cycles
# (about 2 KB each): past it, the connection is dropped.
MAX_PIPELINED = 8
# Bytes a request may send after its head (body, chunk framing, trailers) before the
# connection is dropped: the body limit, four times over for chunk framing, plus a head's
# worth of trailers. Stops trailers (headers after a chunked body) that no head cap sees.
BODY_FRAMING_FACTOR = 4


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The settings that bound a connection, under their settings names.

    Picklable: uvicorn hands them to worker processes.
    """

    max_header_bytes: int  # a head past it is answered 431 (memory per connection)
    max_headers: int
    max_body_bytes: int
    request_read_timeout_seconds: float  # for a whole request, head and body (slowloris)
    max_connections: int
    max_connections_per_client: int
    forwarded_allow_ips: str
    connect_allow_ips: str  # empty: any peer may connect

    @property
    def write_timeout(self) -> float:
        """A response the client does not read gets as long as a request gets to arrive."""
        return self.request_read_timeout_seconds

    @property
    def max_after_head(self) -> int:
        """Bytes a request may send after its head (see BODY_FRAMING_FACTOR)."""
        return BODY_FRAMING_FACTOR * self.max_body_bytes + self.max_header_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(**{field.name: getattr(settings, field.name) for field in fields(cls)})


class _HeaderLimit(Exception):
    """Raised from a parser callback when a request has too many header fields."""


class _PipelineLimit(Exception):
    """Raised from a parser callback when a connection queues too many requests."""


class ConnectionRegistry:
    """This process's open connections, oldest first, and how many each client holds."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.proxies = TrustedProxies(limits.forwarded_allow_ips)
        self.allowed = AddressSet(limits.connect_allow_ips)
        self.open: dict[GuardedProtocol, str | None] = {}
        self.per_client: Counter[str] = Counter()

    def allows(self, address: str | None) -> bool:
        """Whether this peer may connect at all (`PINGCALC_CONNECT_ALLOW_IPS`)."""
        return not self.allowed or address in self.allowed

    def admit(self, conn: GuardedProtocol, address: str | None) -> bool:
        """Register `conn`, evicting an idle or slow connection if a cap is reached."""
        limits = self.limits
        key = None
        if address is not None and not self.proxies.trusts(address):
            key = client_key(address)
            if self.per_client[key] >= limits.max_connections_per_client and not self._evict(key):
                return False
        if len(self.open) >= limits.max_connections and not self._evict(None):
            return False
        self.open[conn] = key
        if key is not None:
            self.per_client[key] += 1
        return True

    def remove(self, conn: GuardedProtocol) -> None:
        if conn not in self.open:
            return
        key = self.open.pop(conn)
        if key is not None:
            self.per_client[key] -= 1
            if self.per_client[key] <= 0:
                del self.per_client[key]

    def _evict(self, key: str | None) -> bool:
        """Close the oldest evictable connection (of client `key`, or of anyone)."""
        for conn, owner in self.open.items():
            if (key is None or owner == key) and conn.evictable():
                self.remove(conn)
                conn.evict()
                return True
        return False


def _registry(server_state: Any, limits: ConnectionLimits) -> ConnectionRegistry:
    registry: ConnectionRegistry | None = getattr(server_state, "pingcalc_registry", None)
    if registry is None:
        registry = ConnectionRegistry(limits)
        server_state.pingcalc_registry = registry
    return registry


def _raw_problem(status: int, detail: str, kind: str) -> bytes:
    """A whole HTTP/1.1 problem response that closes the connection (written by the protocol,
    outside any ASGI cycle)."""
    request_id = new_request_id()
    body = Problem(status, detail, kind=kind).body(request_id)
    lines = [
        f"HTTP/1.1 {status} {_PHRASES[status]}".encode(),
        b"content-type: " + PROBLEM_MEDIA_TYPE.encode(),
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
        *(name + b": " + value for name, value in SECURITY_HEADERS),
        b"x-request-id: " + request_id.encode(),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


_PHRASES = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
}


class GuardedCycle(RequestResponseCycle):
    """uvicorn's request cycle, plus one fast path for responses pingcalc renders itself.

    uvicorn validates every header of every response with two regular expressions, then writes
    the head and the body with two separate writes. pingcalc's own responses carry a dozen
    headers it chose (the security headers are constants, the request id is hex, extra
    headers are validated by the edge), so the edge hands over the head as bytes
    (`"pingcalc.head"` on `http.response.start`) and the head and the body leave in one write.
    Any other message takes uvicorn's own path.
    """

    _head: bytes | None = None
    write_timeout: float = 10.0

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            # A client that stops reading gets `write_timeout` to drain what it was sent
            # (uvicorn would wait for ever, holding the cycle and every request queued
            # behind it).
            try:
                await asyncio.wait_for(self.flow.drain(), self.write_timeout)
            except TimeoutError:
                self.disconnected = True
                self.transport.abort()
                return
        head = message.get("pingcalc.head")
        if head is None and self._head is None:
            await super().send(message)
            return
        if self.disconnected:
            return
        if head is not None:
            if self.response_started:
                raise RuntimeError("a response head after the response started")
            self.response_started = True
            self.waiting_for_100_continue = False
            self.chunked_encoding = False
            self.expected_content_length = message["pingcalc.length"]
            if message.get("pingcalc.close"):
                self.keep_alive = False
            parts = [STATUS_LINE[message["status"]]]
            for name, value in self.default_headers:
                parts += [name, b": ", value, b"\r\n"]
            parts.append(head)
            if not self.keep_alive:
                parts.append(b"connection: close\r\n")
            parts.append(b"\r\n")
            self._head = b"".join(parts)
            return
        if message["type"] != "http.response.body" or message.get("more_body", False):
            raise RuntimeError("a rendered head takes exactly one whole body")
        body = b"" if self.scope["method"] == "HEAD" else message.get("body", b"")
        if body and len(body) != self.expected_content_length:
            raise RuntimeError("the body does not match its Content-Length")
        head, self._head = self._head, None
        self.transport.write(head + body if head is not None else body)
        self.expected_content_length = 0
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds described in the module docstring."""

    def __init__(
        self, config: uvicorn.Config, server_state: Any, app_state: Any, _loop: Any = None
    ):
        super().__init__(config, server_state, app_state, _loop)
        limits: ConnectionLimits = config.pingcalc_limits  # type: ignore[attr-defined]
        self.limits = limits
        self.registry = _registry(server_state, limits)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True  # waiting for, or reading, a request head
        self._head_bytes = 0
        self._tail = b""  # the last bytes of the head so far: "\r\n\r\n" may span reads
        self._header_count = 0
        self._began = False  # a new message began since the last one completed
        self._after_head = 0  # bytes of the current request after its head
        self._running: RequestResponseCycle | None = None  # the cycle being answered

    # --- connection lifetime ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if not self.registry.allows(address):
            write_event("connection_refused", client_ip=address, reason="peer_not_allowed")
            transport.abort()
            return
        if not self.registry.admit(self, address):
            # Every connection is being answered: refuse the newcomer rather than queue it.
            transport.abort()
            return
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.remove(self)
        self._cancel_deadline()
        # uvicorn marks only the newest cycle; the one being answered and any queued behind
        # it must learn it too, or they write to a closed transport (a false 500).
        for cycle in (self._running, *(queued for queued, _ in self.pipeline)):
            _tell_gone(cycle)
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def evictable(self) -> bool:
        """Idle, or still sending its request: nothing is being answered on it."""
        return self.cycle is None or self.cycle.response_complete

    def evict(self) -> None:
        self._cancel_deadline()
        self._drop()

    def _drop(self) -> None:
        """Close now: a graceful close waits for unsent data a client may never read."""
        transport = self.transport
        if transport.get_write_buffer_size():
            transport.abort()
        elif not transport.is_closing():
            transport.close()

    def timeout_keep_alive_handler(self) -> None:
        self._drop()

    # --- reading --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._deadline is None:
            self._arm_deadline()
        if self._in_head:
            joined = self._tail + data
            end = joined.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "the request head is too large", "header-too-large")
                return
            self._tail = joined[-3:]
        else:
            self._after_head += len(data)
            if self._after_head > self.limits.max_after_head:
                self._refuse(413, "the request is too large", "request-too-large")
                return
        self._began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeaderLimit):
                self._refuse(431, "the request has too many header fields", "header-too-large")
            elif isinstance(exc.__context__, _PipelineLimit):
                self._refuse(429, "too many pipelined requests", "pipeline-limit")
            else:
                self._refuse(400, "invalid HTTP request", "bad-request")
            return
        except httptools.HttpParserError:
            self._refuse(400, "invalid HTTP request", "bad-request")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._began:
            # A pipelined request began in this read: count its head from the last head end
            # we can see (an over-estimate when a body without CRLFCRLF precedes it).
            last = data.rfind(b"\r\n\r\n")
            self._head_bytes = len(data) - (last + 4 if last >= 0 else 0)
            self._tail = data[-3:]
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "the request head is too large", "header-too-large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {RAW_HEAD: {}}
        self._began = True
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            # A trailer (a field after a chunked body): httptools reports it like a header,
            # and uvicorn would append it to the request's headers, after the ones a proxy
            # set. Never a request header: `X-Forwarded-For` in a trailer chose the client's
            # address behind the stack's edge, which overwrites only the head's.
            return
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            raise _HeaderLimit
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._after_head = 0
        if (
            self.cycle is not None
            and not self.cycle.response_complete
            and len(self.pipeline) >= MAX_PIPELINED
        ):
            raise _PipelineLimit
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and type(cycle) is RequestResponseCycle:
            # Its task has not run yet: it will find GuardedCycle's `send`.
            cycle.__class__ = GuardedCycle
            cast(GuardedCycle, cycle).write_timeout = self.limits.write_timeout

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The whole request is in: the read deadline stops, the next head starts counting.
        self._cancel_deadline()
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""

    # --- deadlines and refusals -------------------------------------------------------------

    def _arm_deadline(self) -> None:
        self._deadline = self.loop.call_later(
            self.limits.request_read_timeout_seconds, self._read_timed_out
        )

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._in_head and self._head_bytes and self.evictable():
            self._refuse(408, "the request was not sent in time", "request-timeout")
        elif not self._in_head and cycle is not None and not cycle.response_started:
            # A body still trickling while the app waits for it: answered, so a proxy in
            # front tells its client 408, not 502.
            self._refuse(408, "the request body was not sent in time", "request-timeout")
        else:
            self._drop()  # nothing sent at all

    def _refuse(self, status: int, detail: str, kind: str) -> None:
        """Answer `status` and close, unless a response is already on the wire."""
        self._cancel_deadline()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answered = cycle is not None and cycle.response_complete and not self._in_head
        if answered or (cycle is not None and cycle.response_started):
            # This request was already answered (or is being answered): another answer
            # would read as the next request's. Just drop the connection.
            _tell_gone(cycle)
            self._drop()
        else:
            self.transport.write(_raw_problem(status, detail, kind))
            self.transport.close()
            if cycle is not None and not cycle.response_complete:
                # The request broke after its head (bad framing, a stalled body): the app,
                # already started, is told the connection is gone, and its access line
                # carries our answer instead of a client disconnect.
                refused: dict[object, object] = {"status": status, "reason": kind.replace("-", "_")}
                cycle.scope["extensions"][REFUSED] = refused
                _tell_gone(cycle)
                return
        write_event(
            "access",
            request_id=None,
            method=None,
            path=None,
            status=status,
            duration_ms=None,
            client_ip=self.client[0] if self.client else None,
            token=None,
            reason=kind.replace("-", "_"),
        )


def _tell_gone(cycle: RequestResponseCycle | None) -> None:
    """An unfinished cycle learns its connection is gone: its app's `receive` answers
    `http.disconnect` and its sends are dropped."""
    if cycle is not None and not cycle.response_complete:
        cycle.disconnected = True
        cycle.message_event.set()


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die by the
    signal (exit -15). A clean, completed shutdown is a success: exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings pingcalc always uses."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": "pingcalc.server:GuardedProtocol",
        "ws": "none",
        # No version banner (OWASP A05); our own JSON access event replaces uvicorn's.
        "server_header": False,
        "date_header": True,
        "log_config": None,
        "access_log": False,
        # X-Forwarded-For is read by the edge (api/forwarded.py), from trusted proxies only.
        "proxy_headers": False,
        "timeout_keep_alive": settings.keepalive_timeout_seconds,
        # In-flight requests get this long after SIGTERM; new connections are refused at once.
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "lifespan": "on",
    }


def raise_descriptor_limit(settings: Settings) -> int:
    """Raise the soft descriptor limit toward the hard one; return the connection cap it allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = settings.max_connections + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    allowed = settings.max_connections
    if soft != resource.RLIM_INFINITY and soft < wanted:
        allowed = max(16, soft - RESERVED_DESCRIPTORS)
        log.warning(
            "connection_cap_lowered",
            configured=settings.max_connections,
            effective=allowed,
            descriptor_limit=soft,
        )
    return allowed


def config_for(settings: Settings, app: Any, **extra: Any) -> uvicorn.Config:
    """A uvicorn config carrying the connection limits to every worker."""
    config = uvicorn.Config(app, **uvicorn_options(settings), **extra)
    limits = ConnectionLimits.from_settings(settings)
    allowed = raise_descriptor_limit(settings)
    if allowed != limits.max_connections:
        limits = replace(limits, max_connections=allowed)
    config.pingcalc_limits = limits  # type: ignore[attr-defined]
    return config


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; with workers > 1, uvicorn supervises worker processes."""
    if settings.workers > 1:
        from uvicorn.supervisors import Multiprocess

        # Each worker builds its own app from the environment: pass our effective choices down.
        os.environ["PINGCALC_HOST"] = settings.host
        os.environ["PINGCALC_PORT"] = str(settings.port)
        os.environ["PINGCALC_TOKENS_FILE"] = str(settings.tokens_file)
        config = config_for(
            settings, "pingcalc.app:app_from_environment", factory=True, workers=settings.workers
        )
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
        return
    from pingcalc.app import create_app

    _Server(config_for(settings, create_app(settings))).run()
