"""Where checkpoints go besides the audit file: stdout, syslog, or an HTTP collector.

`PINGCALC_AUDIT_CHECKPOINT_TO` lists destinations, comma-separated:

    stdout                      the service's stdout (the container log); the default
    syslog:///dev/log           a syslog daemon's unix socket (facility authpriv)
    syslog://127.0.0.1:514      syslog over UDP
    http://host:port/path       a collector: one POST of the record as JSON per checkpoint
    https://host/path           the same over TLS (the system's CA store)

A checkpoint proves something only once it has left the host: an intruder who can rewrite the
audit file can rewrite a log file on the same host too. Every `send` is bounded in time and
runs outside the auditor's lock, in a worker thread for the periodic checkpoints.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import logging.handlers
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from pingcalc.audit.stdout import StdoutSink, render

# A collector that has not answered within this time is reported and left behind (a hung or
# slow-dripping collector must not hold a worker thread or the shutdown for long).
HTTP_TIMEOUT_SECONDS = 3.0
# What is read of a collector's answer: the status is all that matters.
MAX_RESPONSE_BYTES = 64 * 1024
# A full syslog socket queue blocks a send; give up after this long.
SYSLOG_TIMEOUT_SECONDS = 1.0
SCHEMES = ("stdout", "syslog", "http", "https")


def check_destination(text: str) -> str:
    """`text` if it names a destination; ValueError with what is wrong otherwise."""
    parts = urlsplit(text)
    if text == "stdout":
        return text
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{text!r}: a destination is stdout, syslog://..., http:// or https://")
    if parts.scheme == "syslog":
        if parts.netloc and parts.port is None:
            raise ValueError(f"{text!r}: syslog over UDP needs a port, e.g. syslog://host:514")
        if not parts.netloc and not parts.path.startswith("/"):
            raise ValueError(f"{text!r}: a syslog socket is an absolute path, syslog:///dev/log")
        return text
    if not parts.hostname:
        raise ValueError(f"{text!r}: an HTTP collector needs a host")
    if parts.username or parts.password:
        raise ValueError(f"{text!r}: credentials in the URL would be logged; not supported")
    return text


def destination(
    text: str, stdout: StdoutSink
) -> StreamDestination | SyslogDestination | HttpDestination:
    """The destination `text` names (checked with `check_destination`)."""
    check_destination(text)
    if text == "stdout":
        return StreamDestination(stdout)
    parts = urlsplit(text)
    if parts.scheme == "syslog":
        if parts.netloc:
            return SyslogDestination((parts.hostname or "127.0.0.1", parts.port or 514), text)
        return SyslogDestination(parts.path, text)
    return HttpDestination(text)


class StreamDestination:
    """The stdout sink: the checkpoint becomes one more `"log": "audit"` line."""

    name = "stdout"

    def __init__(self, sink: StdoutSink) -> None:
        self._sink = sink

    def send(self, record: dict[str, Any]) -> None:
        self._sink.write(record)


class _RaisingSysLogHandler(logging.handlers.SysLogHandler):
    """SysLogHandler whose send errors reach the caller instead of stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        raise  # re-raise the error being handled (called from the handler's except block)


class SyslogDestination:
    """A syslog daemon: unix datagram socket or UDP, facility authpriv, priority info."""

    def __init__(self, address: str | tuple[str, int], name: str) -> None:
        self.name = name
        self._address = address
        self._handler: _RaisingSysLogHandler | None = None

    def send(self, record: dict[str, Any]) -> None:
        handler = self._connect()
        try:
            message = {"msg": render(record), "levelno": logging.INFO, "levelname": "INFO"}
            handler.emit(logging.makeLogRecord(message))
        except OSError:
            self._close()  # reconnect next time (the daemon may have restarted)
            raise

    def _connect(self) -> _RaisingSysLogHandler:
        if self._handler is None:
            udp = isinstance(self._address, tuple)
            handler = _RaisingSysLogHandler(
                address=self._address,
                facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV,
                socktype=socket.SOCK_DGRAM if udp else None,
            )
            handler.ident = "pingcalc: "
            handler.append_nul = False  # RFC 3164/5424 messages; old daemons only wanted it
            sock: socket.socket = handler.socket  # type: ignore[attr-defined]
            sock.settimeout(SYSLOG_TIMEOUT_SECONDS)
            self._handler = handler
        return self._handler

    def _close(self) -> None:
        if self._handler is not None:
            with contextlib.suppress(OSError):
                self._handler.close()
            self._handler = None


class HttpDestination:
    """POSTs each checkpoint as JSON; a 2xx answer within `HTTP_TIMEOUT_SECONDS` is success."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.name = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def send(self, record: dict[str, Any]) -> None:
        """One POST, with a hard deadline: past it the socket is shut and TimeoutError raised."""
        body = (render(record) + "\n").encode("ascii")
        connection = self._connection()
        outcome: list[int | Exception] = []

        def post() -> None:
            try:
                connection.request(
                    "POST",
                    self._target,
                    body,
                    {"Content-Type": "application/json", "User-Agent": "pingcalc-audit"},
                )
                response = connection.getresponse()
                response.read(MAX_RESPONSE_BYTES)
                outcome.append(response.status)
            except Exception as exc:  # handed to the caller below
                outcome.append(exc)

        worker = threading.Thread(target=post, name="pingcalc-checkpoint-http", daemon=True)
        worker.start()
        worker.join(HTTP_TIMEOUT_SECONDS)
        if worker.is_alive():
            # Per-operation socket timeouts do not bound a collector that drips bytes: cut it.
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            worker.join(HTTP_TIMEOUT_SECONDS)
            connection.close()
            raise TimeoutError(f"no answer within {HTTP_TIMEOUT_SECONDS:g} s")
        connection.close()
        result = outcome[0] if outcome else OSError("no outcome")
        if isinstance(result, Exception):
            raise result
        if not 200 <= result < 300:
            raise OSError(f"the collector answered HTTP {result}")

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host,
                self._port,
                timeout=HTTP_TIMEOUT_SECONDS,
                context=ssl.create_default_context(),
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=HTTP_TIMEOUT_SECONDS)
