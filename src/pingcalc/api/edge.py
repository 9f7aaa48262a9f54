"""The ASGI application: every request passes through `Edge`, in this order.

1. request id: always the server's own; a plain client X-Request-ID is recorded beside it;
2. one pass over the headers pingcalc acts on (credentials through `auth.parse_bearer`);
3. the client's address (`forwarded.TrustedProxies`) and its limit key;
4. request framing: a transfer coding other than `chunked` (501) and a declared body over
   the limit (413) are refused before anything reads the body;
5. the penalty box (`Gate.screen`), before any routing, for every path but the probes;
6. the route: one dictionary lookup, then its handler (which calls `Gate.admit`);
7. the answer to whatever escaped the handler: a `Problem`, a body over the limit, a client
   that went away (not a server error), or a generic 500 whose details go only to the log;
8. the observers (access line, metrics), once per request, whatever happened.

Pure ASGI and no framework: the hot routes cost a lookup and a call, not a dependency graph.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from pingcalc.api.asgi import Receive, Scope, Send
from pingcalc.api.exchange import REFUSED, BodyTooLarge, ClientDisconnected, Exchange
from pingcalc.api.forwarded import ForwardedError, TrustedProxies
from pingcalc.api.headers import client_request_id, new_request_id
from pingcalc.api.problems import Problem
from pingcalc.api.routing import Router, allowed_methods
from pingcalc.auth import parse_bearer
from pingcalc.gate import Client, Gate, Refusal
from pingcalc.logs import get_logger

error_log = get_logger("pingcalc.error")

# Probes are never refused at the edge: orchestrators must see the truth.
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
# Most refused requests held at once by the tarpit; past it, refusals are answered at once.
TARPIT_MAX_HELD = 1000
# The status recorded for a request whose client went away before its answer (nginx's
# convention): a client event, not a server error, and never sent.
CLIENT_CLOSED = 499

Observer = Callable[[Exchange, float], None]
Lifespan = Callable[[], AbstractAsyncContextManager[None]]


def refusal_problem(refusal: Refusal) -> Problem:
    """The problem response for a gate refusal."""
    headers = {"WWW-Authenticate": refusal.challenge} if refusal.challenge else {}
    return Problem(
        refusal.status,
        refusal.detail,
        kind=refusal.kind,
        title=refusal.title,
        headers=headers,
        reason=refusal.reason,
        retry_after=refusal.retry_after,
    )


class Edge:
    """Request hygiene, dispatch and the last resort, around the route table."""

    def __init__(
        self,
        router: Router,
        *,
        gate: Gate,
        proxies: TrustedProxies,
        max_body_bytes: int,
        observers: Sequence[Observer] = (),
        penalty_delay: float = 0.0,
        lifespan: Lifespan | None = None,
    ) -> None:
        self.router = router
        self.gate = gate
        self.proxies = proxies
        self.max_body_bytes = max_body_bytes
        self.observers = tuple(observers)
        self.penalty_delay = penalty_delay
        self.lifespan = lifespan
        self._tarpitted = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        ex = Exchange(
            scope,
            receive,
            send,
            request_id=new_request_id(),
            started=started,
            body_limit=self.max_body_bytes,
        )
        try:
            await self._dispatch(ex)
        except Problem as problem:
            if not ex.status:
                await ex.problem(problem)
        except BodyTooLarge as exc:
            if not ex.status:
                await ex.problem(Problem(413, str(exc), kind="body-too-large", close=True))
        except ClientDisconnected:
            refused = ex.scope.get("extensions", {}).get(REFUSED)
            if refused is not None:  # the protocol answered it (and closed), not the client
                ex.status, ex.reason = refused["status"], refused["reason"]
            else:
                ex.status = ex.status or CLIENT_CLOSED
                ex.reason = "client_disconnected"
        except Exception:  # the last resort: a generic 500, details only in the log
            error_log.exception("unhandled_exception", request_id=ex.request_id, path=ex.path)
            if not ex.status:
                await ex.problem(
                    Problem(
                        500,
                        "an internal error occurred; quote request id "
                        f"{ex.request_id} to the operator",
                        kind="internal",
                        close=True,
                    )
                )
            else:
                ex.status = 500
        finally:
            elapsed = time.perf_counter() - started
            for observe in self.observers:
                observe(ex, elapsed)

    async def _dispatch(self, ex: Exchange) -> None:
        authorization: bytes | None = None
        forwarded: bytes | None = None
        coding: bytes | None = None
        for name, value in ex.scope["headers"]:
            if name == b"authorization":
                # Two Authorization headers are ambiguous: treated as malformed credentials.
                authorization = value if authorization is None else b"-"
            elif name == b"content-type":
                ex.content_type = value
            elif name == b"content-length":
                # A malformed length is answered as too large rather than trusted.
                ex.content_length = int(value) if value.isdigit() else 1 << 62
            elif name == b"x-request-id":
                ex.client_request_id = client_request_id(value)
            elif name == b"x-forwarded-for":
                forwarded = value if forwarded is None else forwarded + b"," + value
            elif name == b"transfer-encoding":
                # Several lines are one list (RFC 9110 5.3): `gzip` + `chunked` = `gzip, chunked`.
                coding = value if coding is None else coding + b"," + value
            elif name == b"accept":
                ex.accept = value
        peer = ex.scope["client"][0] if ex.scope.get("client") else "unknown"
        proxies = self.proxies
        if proxies and forwarded is not None:
            try:
                ex.client = Client.of(proxies.client(peer, forwarded.decode("latin-1")))
            except ForwardedError as exc:
                ex.client = Client.of(peer)
                raise Problem(400, str(exc), kind="bad-forwarded-for", close=True) from None
        else:
            ex.client = Client.of(peer)
        ex.presented = parse_bearer(
            authorization.decode("latin-1") if authorization is not None else None
        )
        if coding is not None and coding.strip().lower() != b"chunked":
            # Only `chunked` is understood (RFC 9112 6.1); anything else is refused, never
            # guessed at: `gzip, chunked` would hand the app a compressed body (smuggling).
            raise Problem(
                501,
                "only 'Transfer-Encoding: chunked' is supported",
                kind="transfer-coding",
                close=True,
            )
        if ex.content_length is not None and ex.content_length > ex.body_limit:
            raise BodyTooLarge(ex.body_limit)
        path = ex.path
        if path not in HEALTH_PATHS:
            refusal = self.gate.screen(ex.client, ex.presented)
            if refusal is not None:
                await self._tarpit()
                raise refusal_problem(refusal)
        methods = self.router.find(path)
        if methods is None:
            raise Problem(404, f"there is no resource at {path[:200]}")
        ex.route = next(iter(methods.values())).path
        route = methods.get(ex.method)
        if route is None and ex.method == "HEAD":
            route = methods.get("GET")
        if route is None:
            raise Problem(
                405,
                f"{ex.method[:16]} is not allowed on {path[:200]}",
                headers={"Allow": allowed_methods(methods)},
            )
        await route.handler(ex)

    async def _tarpit(self) -> None:
        """Hold a refused request briefly before answering: a keep-alive flooder waits for each
        answer, so its request rate drops to about one per `penalty_delay` per connection and
        the event loop stays free for everyone else. Bounded, so it cannot pile up coroutines."""
        if self.penalty_delay <= 0 or self._tarpitted >= TARPIT_MAX_HELD:
            return
        self._tarpitted += 1
        # Jittered (0.5x-1.5x) so that held flooders are not all released in the same instant
        # and cannot hit the loop in synchronised bursts.
        delay = self.penalty_delay * (0.5 + random.random())  # noqa: S311  # nosec B311
        try:
            await asyncio.sleep(delay)
        finally:
            self._tarpitted -= 1

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around `self.lifespan` (start-up, then shutdown)."""
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        manager = self.lifespan() if self.lifespan is not None else contextlib.nullcontext()
        try:
            await manager.__aenter__()
        except Exception as exc:
            error_log.exception("startup_failed")
            await send({"type": "lifespan.startup.failed", "message": str(exc)[:200]})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await manager.__aexit__(None, None, None)
        finally:
            await send({"type": "lifespan.shutdown.complete"})
