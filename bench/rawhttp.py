"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load and latency probes.

httpx spends several times the server's own CPU per request, so a Python load generator built
on it would measure itself. Requests are pre-encoded bytes; a response is parsed just enough
to read its status and skip its body (Content-Length only: the servers under test never chunk
these responses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

# A response head longer than this is not one our servers send: fail instead of buffering.
MAX_HEAD_LINES = 64


def encode_request(
    method: str,
    path: str,
    *,
    port: int,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
) -> bytes:
    """One HTTP/1.1 request as bytes, keep-alive, with a JSON body when given."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    body = b""
    if json_body is not None:
        body = json.dumps(json_body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection that reconnects when the server closes it."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", source: str | None = None) -> None:
        self.host = host
        self.port = port
        # A loopback source address (127.0.0.N) lets one machine play several clients.
        self.source = source
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        local = (self.source, 0) if self.source else None
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, local_addr=local
        )
        return self._reader, self._writer

    async def request(self, raw: bytes) -> int:
        """Send one encoded request, read the whole response, return its status."""
        if self._reader is None or self._writer is None:
            reader, writer = await self._open()
        else:
            reader, writer = self._reader, self._writer
        try:
            writer.write(raw)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionResetError("closed before a response")
            status = int(status_line.split(b" ", 2)[1])
            length, close = 0, False
            for _ in range(MAX_HEAD_LINES):
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            else:
                raise ValueError("response head too long")
            if length:
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            await self.close()
            raise
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        """Close the socket (the next request reconnects)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
