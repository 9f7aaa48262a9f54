"""One request and its answer, as the edge and the routes see it.

The edge reads the few headers pingcalc acts on in one pass and keeps them here; routes read
the body through `read_body` (bounded, and the same way for every route) and answer through
`respond`/`problem`, which add the security headers and the request id. A route that answers
in parts as things happen (live ping replies) uses `start_stream`/`send_part`, and runs its
work under `unless_disconnected`, so a client that goes away stops it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from pingcalc.api.asgi import Receive, Scope, Send
from pingcalc.api.headers import render_head, response_headers
from pingcalc.api.problems import PROBLEM_MEDIA_TYPE, Problem
from pingcalc.gate import Client

JSON = b"application/json"
T = TypeVar("T")
# The ASGI extension of pingcalc's guarded protocol (pingcalc.server.GuardedCycle).
RAW_HEAD = "pingcalc.raw_head"
# Set by the guarded protocol in a request's extensions when it answered the request itself
# ({"status", "reason"}) while the application was reading it: e.g. 408 for a body that stopped
# arriving. The application then sees the disconnect, and its access line says why.
REFUSED = "pingcalc.refused"


class BodyTooLarge(Exception):
    """The body passed the limit while it was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class ClientDisconnected(Exception):
    """The client went away before its request was read or answered: its event, not ours."""


class Exchange:
    """A request's context (id, client, credentials, headers read) and its answer's status."""

    __slots__ = (
        "accept",
        "body_limit",
        "client",
        "client_request_id",
        "content_length",
        "content_type",
        "method",
        "path",
        "presented",
        "raw",
        "reason",
        "receive",
        "request_id",
        "rid",
        "route",
        "scope",
        "send",
        "started",
        "status",
        "token",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        request_id: str,
        started: float,
        body_limit: int,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.request_id = request_id
        self.rid = request_id.encode("ascii")
        self.started = started
        self.body_limit = body_limit
        self.client: Client | None = None
        self.client_request_id: str | None = None
        self.presented: str | None = None
        self.content_type: bytes | None = None
        self.content_length: int | None = None
        self.accept: bytes | None = None
        # The answer: 0 until a response starts; the token and reason for the access line.
        self.status = 0
        self.token: str | None = None
        self.reason: str | None = None
        # The route template for metrics (None: no route matched).
        self.route: str | None = None
        # The server renders a head we hand it as bytes (GuardedProtocol): one write, and
        # no regular expressions over our own constant headers.
        self.raw = RAW_HEAD in scope.get("extensions", ())

    @property
    def client_ip(self) -> str | None:
        return self.client.address if self.client is not None else None

    def context(self) -> dict[str, Any]:
        """The fields every audit record of this request carries."""
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "client_ip": self.client_ip,
            "token": self.token,
        }
        if self.client_request_id is not None:
            fields["client_request_id"] = self.client_request_id
        return fields

    def accepts(self, media_type: bytes) -> bool:
        """Whether `Accept` names `media_type` itself with a weight above 0.

        Wildcards do not count: a special form (a stream, say) is sent only to a client that
        asks for it by name, so `*/*` keeps getting the ordinary answer.
        """
        accept = self.accept
        if not accept or media_type not in accept.lower():
            return False
        for part in accept.lower().split(b","):
            name, _, params = part.partition(b";")
            if name.strip() != media_type:
                continue
            for param in params.split(b";"):
                key, _, value = param.partition(b"=")
                if key.strip() == b"q":
                    try:
                        return float(value.strip()) > 0
                    except ValueError:
                        return False
            return True
        return False

    async def read_body(self) -> bytes:
        """The whole body, at most `body_limit` bytes (BodyTooLarge past it)."""
        limit = self.body_limit
        if self.content_length is not None and self.content_length > limit:
            raise BodyTooLarge(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Send a whole response: the security headers and request id are added here."""
        self.status = status
        if self.raw:
            close = False
            if headers and (b"connection", b"close") in headers:
                headers = [h for h in headers if h != (b"connection", b"close")]
                close = True
            await self.send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": (),
                    "pingcalc.head": render_head(
                        None if status == 304 else content_type,
                        len(body),
                        headers or [],
                        self.rid,
                    ),
                    "pingcalc.length": 0 if status == 304 else len(body),
                    "pingcalc.close": close,
                }
            )
            await self.send({"type": "http.response.body", "body": body})
            return
        if status == 304:  # Not Modified: headers only, no representation metadata
            head: list[tuple[bytes, bytes]] = []
        else:
            head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if headers:
            head.extend(headers)
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": response_headers(head, self.rid),
            }
        )
        await self.send(
            {"type": "http.response.body", "body": b"" if self.method == "HEAD" else body}
        )

    async def start_stream(
        self,
        status: int,
        content_type: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Begin a response whose body follows in parts (`send_part`): no content-length, so
        the server frames it (chunked on HTTP/1.1). Security headers and request id as ever."""
        # Proxies such as nginx buffer a response until it ends unless told not to.
        head = [(b"content-type", content_type), (b"x-accel-buffering", b"no")]
        if headers:
            head.extend(headers)
        self.status = status
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": response_headers(head, self.rid),
            }
        )

    async def send_part(self, body: bytes, *, last: bool = False) -> None:
        """Send one part of a streamed body; `last` ends the response."""
        await self.send({"type": "http.response.body", "body": body, "more_body": not last})

    async def unless_disconnected(self, work: Awaitable[T]) -> T:
        """`work`'s result, or ClientDisconnected once `work` is cancelled because the client
        went away first (its `finally` blocks, such as a released concurrency slot, have run).

        Call only after the body was read: from then on `receive()` yields nothing but the
        disconnect, which the server sends when the connection closes (or the response ends).
        """
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self._disconnect())
        try:
            await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait((task,))  # its cleanup runs now; no error of its own leaks
        if task.cancelled():
            raise ClientDisconnected
        return task.result()

    async def _disconnect(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass

    async def problem(self, problem: Problem) -> None:
        """Answer with `problem` as application/problem+json."""
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()
        ]
        if problem.close:
            headers.append((b"connection", b"close"))
        reason = problem.extensions.get("reason")
        if isinstance(reason, str):
            self.reason = reason
        await self.respond(
            problem.status, problem.body(self.request_id), PROBLEM_MEDIA_TYPE.encode(), headers
        )
