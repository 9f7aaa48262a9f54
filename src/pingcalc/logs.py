"""Structured JSON logs on stdout: one event name plus key-value fields per line.

JSON rendering escapes CR, LF and control characters, so user input inside a field cannot
forge a second log line (log injection). A last processor scrubs anything shaped like a
bearer token from every field, as a second line of defence: no code path logs headers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# Our tokens start with `pc_`; also catch "Bearer <anything>" in case a header is echoed.
_SECRET_PATTERNS = re.compile(r"pc_[A-Za-z0-9_-]{16,}|(?i:bearer)\s+\S+")
_REDACTED = "[REDACTED]"

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return (
            _SECRET_PATTERNS.sub(_REDACTED, value)
            if ("pc_" in value or "earer" in value)
            else value
        )
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace token-shaped substrings in every field."""
    for key, value in event_dict.items():
        event_dict[key] = _scrub(value)
    return event_dict


def json_line(obj: Any, **_kw: Any) -> str:
    """One JSON line: ensure_ascii escapes CR, LF, ANSI and every non-ASCII character, so a
    field can never forge a second line (log injection)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), default=str)


class _StdlibJSONFormatter(logging.Formatter):
    """Render records from other libraries (uvicorn) as the same JSON events."""

    converter = time.gmtime  # type: ignore[assignment]  # UTC timestamps

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json_line(_scrub(event))


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log event, ours and uvicorn's, to `stream` (stdout) as one JSON line."""
    global _min_level, _stream
    level_no = LEVELS[level]
    out = stream if stream is not None else sys.stdout
    _min_level, _stream = level_no, stream
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(serializer=json_line),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(_StdlibJSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Our access event replaces uvicorn's prose access log.
    logging.getLogger("uvicorn.access").disabled = True


# The per-request hot path (the access event) bypasses structlog's processor chain: one
# dict, one json.dumps, one write. Same JSON shape, same scrubbing, a fraction of the cost.
_min_level = logging.INFO
_stream: TextIO | None = None
_second = -1
_second_text = ""


def utc_timestamp() -> str:
    """RFC 3339 UTC time with microseconds, e.g. 2026-11-23T14:00:00.123456Z."""
    global _second, _second_text
    now = time.time()
    whole = int(now)
    if whole != _second:
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second_text}.{int((now - whole) * 1_000_000):06d}Z"


def write_event(event: str, level: str = "info", **fields: Any) -> None:
    """Write one JSON event line to the log stream, as structlog would, but cheaply."""
    if LEVELS[level] < _min_level:
        return
    record: dict[str, Any] = {"ts": utc_timestamp(), "level": level, "event": event}
    for key, value in fields.items():
        record[key] = _scrub(value) if isinstance(value, str) else value
    stream = _stream if _stream is not None else sys.stdout
    try:
        stream.write(json_line(record) + "\n")
        stream.flush()
    except (OSError, ValueError):  # a closed or full stdout must not fail the request
        pass


def get_logger(name: str) -> Any:
    """A structlog logger bound to a component name."""
    return structlog.get_logger(component=name)
