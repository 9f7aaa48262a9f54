"""CPU time of each function pingcalc's server calls per request, timed in-process.

bench/bench_http.py runs this in a child process pinned to the server's core, between its
wrk rounds, with the same PINGCALC_* settings as the benchmarked `pingcalc serve` (so the
same limits, the audit on stdout and the access log on), and reads one JSON line back. The
objects are the server's own: the application from `pingcalc.app.create_app`, its `Gate`,
its `Auditor` (stdout sink; stdout is a file here, as it is for the benchmarked server), its
`Evaluator` and metrics. Every row is the median, over `BATCHES` batches, of the process CPU
time per call (`time.process_time_ns`), so other processes on the core do not inflate it.

Read a row as a lower bound of its cost inside a whole request: a loop that calls one
function keeps that function's code and data in the CPU caches.

Stand-alone: `PINGCALC_TOKENS_FILE=tokens.json BENCH_BEARER=<secret> python -m bench.layers`
(BENCH_BEARER: a token of that file with the `calculate` scope).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

# A calculation as wrk sends it (bench/bench_http.py's EXPRESSION).
EXPRESSION = "2*(3+4)**2-17/3"
BATCHES = 5
# Calls per batch: enough for a batch of tens of milliseconds on the slowest row.
CALLS = 1000
CALCULATE = "/api/v1/calculate"
# What each row times, in the order of the request path (also the report's labels).
LABELS: dict[str, str] = {
    "app_pingcalc": "the whole pingcalc application (`Edge` with its routes, gate, audit, "
    "observers), one ASGI call with a prepared scope and body",
    "app_bare": "the whole bare FastAPI application, one ASGI call",
    "app_starlette": "the whole bare Starlette application, one ASGI call",
    "edge": "edge: `Exchange`, the header pass, client address, bearer parse, penalty-box "
    "screen, route lookup (through `Edge` to a no-op route)",
    "gate_admit": "`Gate.admit`: per-address GCRA, token lookup (SHA-256, tokens-file check), "
    "scope, audit availability, per-token GCRA",
    "body_parse": "body parse: `CalculateRequest.model_validate_json`",
    "evaluate": "`Evaluator.evaluate` on a repeated expression (the server's evaluator)",
    "audit_emit": "`Auditor.emit` of the `calculation` record (stdout sink, one line written "
    "and flushed; metrics observer)",
    "response_json": "response JSON: `json.dumps` of expression and result, encoded",
    "respond": "`Exchange.respond`: the head rendered as bytes, two ASGI messages",
    "access_line": "`observers.access_line`: one JSON access line written and flushed",
    "metrics": "metrics: `observe_request` (and `observe_calculation` on calculate)",
}


def _median_us(samples: list[int], calls: int) -> float:
    return round(statistics.median(samples) / calls / 1000, 2)


def timed(fn: Callable[[], object], calls: int = CALLS, batches: int = BATCHES) -> float:
    """Median CPU µs per call of `fn` over `batches` batches of `calls` calls."""
    fn()  # warm: first-call caches, lazy imports
    samples = []
    for _ in range(batches):
        started = time.process_time_ns()
        for _ in range(calls):
            fn()
        samples.append(time.process_time_ns() - started)
    return _median_us(samples, calls)


def timed_async(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[], Awaitable[object]],
    calls: int = CALLS,
    batches: int = BATCHES,
) -> float:
    """`timed` for a coroutine function, awaited inside `loop` as a request handler would."""

    async def batch(n: int) -> int:
        started = time.process_time_ns()
        for _ in range(n):
            await fn()
        return time.process_time_ns() - started

    loop.run_until_complete(batch(1))
    samples = [loop.run_until_complete(batch(calls)) for _ in range(batches)]
    return _median_us(samples, calls)


class Asgi:
    """A prepared request for an ASGI app: a fresh scope per call, the body, a recording send."""

    def __init__(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes, raw: bool
    ) -> None:
        from pingcalc.api.exchange import RAW_HEAD

        self.base: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8080),
            "client": ("127.0.0.1", 40000),
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
        }
        self.raw_head = RAW_HEAD if raw else None
        self.request = {"type": "http.request", "body": body, "more_body": False}
        self.status = 0

    def scope(self) -> dict[str, Any]:
        scope = dict(self.base)
        # uvicorn builds a scope per request; pingcalc's protocol adds its extension.
        scope["extensions"] = {self.raw_head: {}} if self.raw_head else {}
        return scope

    async def receive(self) -> dict[str, Any]:
        return self.request

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]

    def call(self, app: Any) -> Callable[[], Awaitable[None]]:
        async def one() -> None:
            await app(self.scope(), self.receive, self.send)

        return one


def _headers(body: bytes, bearer: str | None, post: bool) -> list[tuple[bytes, bytes]]:
    """The headers wrk sends (bench/bench_http.py's scripts)."""
    headers = [(b"host", b"127.0.0.1:8080")]
    if post:
        headers += [(b"content-type", b"application/json")]
        if bearer is not None:
            headers += [(b"authorization", b"Bearer " + bearer.encode())]
        headers += [(b"content-length", str(len(body)).encode())]
    return headers


def _exchange(request: Asgi, body_limit: int) -> Any:
    """An `Exchange` of `request`, as the edge makes one."""
    from pingcalc.api.exchange import Exchange
    from pingcalc.api.headers import new_request_id

    return Exchange(
        request.scope(),
        request.receive,
        request.send,
        request_id=new_request_id(),
        started=time.perf_counter(),
        body_limit=body_limit,
    )


def _responder(ex: Any, body: bytes) -> Callable[[], Awaitable[None]]:
    async def respond() -> None:
        await ex.respond(200, body)

    return respond


def _access(ex: Any) -> Callable[[], None]:
    from pingcalc.api.observers import access_line

    def write() -> None:
        access_line(ex, 0.000123)

    return write


def _observer(metrics: Any, path: str, method: str) -> Callable[[], None]:
    """What the metrics observer and the calculate route record per request."""

    def observe() -> None:
        metrics.observe_request(path, method, 200, 0.000123)
        if path == CALCULATE:
            metrics.observe_calculation(0.0000123)

    return observe


def measure(bearer: str, log: Path) -> dict[str, dict[str, float]]:
    """µs per call of every row of LABELS, by endpoint: {"calculate": {...}, "healthz": {...}}."""
    import uvloop

    from bench.bare_app import create_bare_app
    from bench.bare_starlette_app import create_bare_starlette_app
    from pingcalc.api.calculate import CalculateRequest
    from pingcalc.api.edge import Edge
    from pingcalc.api.exchange import Exchange
    from pingcalc.api.forwarded import TrustedProxies
    from pingcalc.api.headers import new_request_id
    from pingcalc.api.routing import Route, Router
    from pingcalc.app import create_app
    from pingcalc.gate import Client
    from pingcalc.logs import configure_logging
    from pingcalc.services import build_services
    from pingcalc.settings import load_settings

    settings = load_settings()
    stream = log.open("w")
    sys.stdout = stream  # the server's stdout is a file too: the same write and flush
    try:
        configure_logging(settings.log_level)
        services = build_services(settings)
        app = create_app(settings, services)
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        body = json.dumps({"expression": EXPRESSION}).encode()
        post = {"pingcalc": _headers(body, bearer, True), "bare": _headers(body, None, True)}
        get = _headers(b"", None, False)
        requests = {
            ("pingcalc", "calculate"): Asgi("POST", CALCULATE, post["pingcalc"], body, True),
            ("pingcalc", "healthz"): Asgi("GET", "/healthz", get, b"", True),
            ("bare", "calculate"): Asgi("POST", CALCULATE, post["bare"], body, False),
            ("bare", "healthz"): Asgi("GET", "/healthz", get, b"", False),
            ("starlette", "calculate"): Asgi("POST", CALCULATE, post["bare"], body, False),
            ("starlette", "healthz"): Asgi("GET", "/healthz", get, b"", False),
        }
        apps = {
            "pingcalc": app,
            "bare": create_bare_app(),
            "starlette": create_bare_starlette_app(),
        }
        out: dict[str, dict[str, float]] = {"calculate": {}, "healthz": {}}
        for (name, endpoint), request in requests.items():
            call = request.call(apps[name])
            loop.run_until_complete(call())
            if request.status != 200:
                raise RuntimeError(f"{name} {endpoint} answered {request.status} in-process")
            out[endpoint][f"app_{name}"] = timed_async(loop, call)

        async def noop(_ex: Exchange) -> None:
            return None

        bare_edge = Edge(
            Router([Route("POST", CALCULATE, noop), Route("GET", "/healthz", noop)]),
            gate=services.gate,
            proxies=TrustedProxies(settings.forwarded_allow_ips),
            max_body_bytes=settings.max_body_bytes,
        )
        for endpoint in ("calculate", "healthz"):
            request = requests[("pingcalc", endpoint)]
            out[endpoint]["edge"] = timed_async(loop, request.call(bare_edge))

        client = Client.of("127.0.0.1")
        gate = services.gate
        out["calculate"]["gate_admit"] = timed_async(
            loop, lambda: gate.admit(client, bearer, "calculate")
        )
        parse = CalculateRequest.model_validate_json
        out["calculate"]["body_parse"] = timed(lambda: parse(body))
        evaluator = services.evaluator
        out["calculate"]["evaluate"] = timed(lambda: evaluator.evaluate(EXPRESSION))
        result = evaluator.evaluate(EXPRESSION)
        context = {"request_id": new_request_id(), "client_ip": "127.0.0.1", "token": "bench",
                   "expression": EXPRESSION}  # fmt: skip
        audit = services.audit
        out["calculate"]["audit_emit"] = timed(
            lambda: audit.emit("calculation", outcome="success", result=result, **context)
        )

        def response_json() -> bytes:
            answer = {"expression": EXPRESSION, "result": result}
            return json.dumps(answer, separators=(",", ":")).encode()

        out["calculate"]["response_json"] = timed(response_json)
        metrics = services.metrics
        for endpoint, method, path, answer in (
            ("calculate", "POST", CALCULATE, response_json()),
            ("healthz", "GET", "/healthz", b'{"status":"ok"}'),
        ):
            ex = _exchange(requests[("pingcalc", endpoint)], settings.max_body_bytes)
            ex.client = client
            ex.token = "bench" if endpoint == "calculate" else None
            out[endpoint]["respond"] = timed_async(loop, _responder(ex, answer))
            out[endpoint]["access_line"] = timed(_access(ex))
            out[endpoint]["metrics"] = timed(_observer(metrics, path, method))
        loop.close()
    finally:
        sys.stdout = sys.__stdout__
        stream.close()
    return out


def main() -> int:
    bearer = os.environ["BENCH_BEARER"]
    with tempfile.TemporaryDirectory(prefix="pingcalc-layers-") as tmp:
        figures = measure(bearer, Path(tmp) / "stdout.log")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
