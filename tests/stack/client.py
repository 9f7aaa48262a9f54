"""A bounded HTTPS client run inside client containers on the stack's edge network.

Each container is one more source address for the edge (every host client reaches it from the
same gateway address). Standard library only: it runs on the pingcalc image's Python. It
prints one JSON object on stdout. Modes:

    load   --rate R --duration D --connections C   steady requests, status and latency of each
    burst  --count N --connections C [--spoof | --spoof-trailer]   N requests as fast as
           possible (--spoof-trailer: a chunked body whose trailer names another address)
    slow   --connections K --interval S --duration D   K slowloris connections: TLS, then one
           header line every S seconds; when and how the server closed each

Requests: POST /api/v1/calculate with the bearer token in $TOKEN (absent: no header), each
with `X-Request-ID: <prefix>-<n>` so the replicas' logs show where it went.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from typing import Any

BODY = json.dumps({"expression": "6*7"}).encode()
# Never wait longer than this for one answer: a hung request counts as a failure.
REQUEST_TIMEOUT = 20.0


def tls_context(ca: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Connection:
    """One keep-alive HTTP/1.1 connection over TLS; reopened after any failure."""

    def __init__(self, args: argparse.Namespace, context: ssl.SSLContext) -> None:
        self.args = args
        self.context = context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.args.host, self.args.port, ssl=self.context, server_hostname=self.args.sni
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, request_id: str, extra: dict[str, str], trailer: dict[str, str] | None = None
    ) -> int:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        framing = {"Content-Length": str(len(BODY))}
        if trailer:
            framing = {"Transfer-Encoding": "chunked"}
        headers = {
            "Host": self.args.sni,
            "Content-Type": "application/json",
            **framing,
            "X-Request-ID": request_id,
            **extra,
        }
        token = os.environ.get("TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        head = f"POST {self.args.path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        body = BODY
        if trailer:
            fields = "".join(f"{k}: {v}\r\n" for k, v in trailer.items())
            body = f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n" + fields.encode() + b"\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed before any answer")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await self.reader.readexactly(length)
        if close:
            self.close()
        return status


class Results:
    """Outcome of every request: status counts, failures with their time, latencies."""

    def __init__(self) -> None:
        self.started = time.time()
        self.statuses: dict[str, int] = {}
        self.failures: list[dict[str, Any]] = []
        self.latencies: list[float] = []

    def record(self, outcome: str, latency: float, sent_at: float) -> None:
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1
        self.latencies.append(latency)
        if outcome != "200":
            self.failures.append({"at": round(sent_at, 3), "outcome": outcome})

    def summary(self, **extra: Any) -> dict[str, Any]:
        ordered = sorted(self.latencies) or [0.0]
        return {
            "started": self.started,
            "elapsed": round(time.time() - self.started, 3),
            "total": len(self.latencies),
            "statuses": self.statuses,
            "failures": self.failures[:50],
            "latency_p50": round(ordered[len(ordered) // 2], 4),
            "latency_p95": round(ordered[int(len(ordered) * 0.95)], 4),
            "latency_max": round(ordered[-1], 4),
            **extra,
        }


async def one_request(
    conn: Connection,
    results: Results,
    rid: str,
    extra: dict[str, str],
    trailer: dict[str, str] | None = None,
) -> None:
    sent = time.time()
    try:
        answer = conn.request(rid, extra, trailer)
        outcome = str(await asyncio.wait_for(answer, REQUEST_TIMEOUT))
    except (TimeoutError, OSError, EOFError, ValueError, IndexError) as exc:
        conn.close()
        outcome = type(exc).__name__
    results.record(outcome, time.time() - sent, sent)


async def load(args: argparse.Namespace) -> dict[str, Any]:
    """Requests at a steady rate: worker i sends at start + (k * C + i) / R."""
    context, results = tls_context(args.ca), Results()
    start = max(time.time(), args.start_at)
    results.started = start  # the rate is measured from the scheduled start
    per_worker = args.rate / args.connections
    count = int(args.rate * args.duration)

    async def worker(index: int) -> None:
        conn = Connection(args, context)
        k = 0
        while (n := k * args.connections + index) < count:
            delay = start + n / args.rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await one_request(conn, results, f"{args.prefix}-{n}", {})
            k += 1
        conn.close()

    await asyncio.gather(*(worker(i) for i in range(args.connections)))
    return results.summary(rate=args.rate, per_worker=per_worker)


async def burst(args: argparse.Namespace) -> dict[str, Any]:
    """`count` requests as fast as `connections` keep-alive connections allow."""
    context, results = tls_context(args.ca), Results()
    queue = iter(range(args.count))

    async def worker() -> None:
        conn = Connection(args, context)
        for n in queue:
            extra: dict[str, str] = {}
            trailer: dict[str, str] | None = None
            # A fresh address per request: if the edge or the replicas believed it, every
            # request would get a fresh budget.
            fake = f"198.51.100.{n % 250 + 1}"
            if args.spoof:
                extra = {"X-Forwarded-For": fake, "Forwarded": f"for={fake}", "X-Real-IP": fake}
            elif args.spoof_trailer:
                # After the body, where the edge's header rewriting does not reach.
                trailer = {"X-Forwarded-For": fake}
            await one_request(conn, results, f"{args.prefix}-{n}", extra, trailer)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(args.connections)))
    return results.summary()


async def slow(args: argparse.Namespace) -> dict[str, Any]:
    """Slowloris: complete TLS, then trickle a request head that never ends.

    Prints `{"ready": N}` once every connection has been attempted (N established), so the
    caller can act while they are all open; the summary follows when they are over."""
    context = tls_context(args.ca)
    started = time.time()
    outcomes: list[dict[str, Any]] = []
    ready = asyncio.Event()
    attempted = established = 0

    def attempt_done(ok: bool) -> None:
        nonlocal attempted, established
        attempted += 1
        established += ok
        if attempted == args.connections:
            ready.set()

    async def one(index: int) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    args.host, args.port, ssl=context, server_hostname=args.sni
                ),
                10,
            )
            # The server's header deadline runs from here: TLS is done, the head begins.
            opened = time.time()
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {args.sni}\r\n".encode())
            await writer.drain()
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            outcomes.append({"established": False, "error": type(exc).__name__})
            attempt_done(False)
            return
        attempt_done(True)
        answer, line = b"", 0
        deadline = started + args.duration
        while time.time() < deadline:
            try:
                answer = await asyncio.wait_for(reader.read(64), args.interval)
                break  # the server answered (408) or closed: either way it is over
            except TimeoutError:
                pass
            except OSError:
                break
            try:
                line += 1
                writer.write(f"X-Slow-{index}-{line}: x\r\n".encode())
                await writer.drain()
            except OSError:
                break
        closed = time.time() if time.time() < deadline else None
        writer.close()
        outcomes.append(
            {
                "established": True,
                "opened": round(opened - started, 3),
                "held": round(closed - opened, 3) if closed else None,
                "answer": answer[:12].decode("latin-1"),
            }
        )

    async def announce() -> None:
        await ready.wait()
        print(json.dumps({"ready": established}), flush=True)

    await asyncio.gather(announce(), *(one(i) for i in range(args.connections)))
    return {"started": started, "connections": outcomes}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("load", "burst", "slow"))
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--sni", default="localhost")
    parser.add_argument("--ca", default="/ca.crt")
    parser.add_argument("--path", default="/api/v1/calculate")
    parser.add_argument("--prefix", default="client")
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--spoof", action="store_true")
    parser.add_argument("--spoof-trailer", action="store_true")
    parser.add_argument("--start-at", type=float, default=0.0)
    args = parser.parse_args()
    mode = {"load": load, "burst": burst, "slow": slow}[args.mode]
    print(json.dumps(asyncio.run(mode(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
