"""Structured JSON logs on stdout: one event name plus key-value fields per line.

One render path for every line the process writes (`render`): our structlog events,
uvicorn's and other libraries' stdlib records (through structlog's `ProcessorFormatter` with
a foreign pre-chain), and the per-request access line (`write_event`, which skips the
processor chain only because it runs on every request: same keys, same timestamp, same
renderer). Every line starts with ``ts`` (RFC 3339 UTC, microseconds), ``level``, ``event``,
then ``logger`` where there is one, then the event's fields.

JSON rendering escapes CR, LF and control characters, so user input inside a field cannot
forge a second log line (log injection). Anything shaped like a bearer token is scrubbed from
every field, as a second line of defence: no code path logs headers.
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

# Our tokens start with `pc_`; also catch "Bearer <anything>" (any case) in case a header is
# echoed somewhere.
_SECRET_PATTERNS = re.compile(r"pc_[A-Za-z0-9_-]{16,}|(?i:bearer)\s+\S+")
_SECRET_HINT = re.compile(r"pc_|(?i:bearer)")
_REDACTED = "[REDACTED]"

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# The keys every line starts with, in this order.
_LEADING = ("ts", "level", "event", "logger")
# ensure_ascii escapes CR, LF, ANSI and every non-ASCII character: one line per event.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str)


def scrub(value: Any) -> Any:
    """`value` with every token-shaped substring replaced (strings inside containers too)."""
    if isinstance(value, str):
        return _SECRET_PATTERNS.sub(_REDACTED, value) if _SECRET_HINT.search(value) else value
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor (and audit helper): scrub every field in place.

    One search over all the plain string values decides whether any needs scrubbing (on every
    request this costs one regex pass instead of one per field)."""
    plain = [value for value in event_dict.values() if type(value) is str]
    nested = len(plain) != len(event_dict) and any(
        isinstance(value, dict | list | tuple) for value in event_dict.values()
    )
    if not nested and not _SECRET_HINT.search("\n".join(plain)):
        return event_dict
    for key, value in event_dict.items():
        if isinstance(value, str | dict | list | tuple):
            event_dict[key] = scrub(value)
    return event_dict


def json_line(obj: Any, **_kw: Any) -> str:
    """`obj` as one line of compact ASCII JSON."""
    return _ENCODER.encode(obj)


def render(event_dict: MutableMapping[str, Any]) -> str:
    """The one renderer: the leading keys in order, then the rest, as one JSON line."""
    ordered = {key: event_dict[key] for key in _LEADING if key in event_dict}
    if len(ordered) != len(event_dict):
        for key, value in event_dict.items():
            if key not in ordered:
                ordered[key] = value
    return _ENCODER.encode(ordered)


_second = -1
_second_text = ""


def utc_timestamp(now: float | None = None) -> str:
    """RFC 3339 UTC time with microseconds, e.g. 2026-11-23T14:00:00.123456Z."""
    global _second, _second_text
    if now is None:
        now = time.time()
    whole = int(now)
    if whole != _second:
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second_text}.{int((now - whole) * 1_000_000):06d}Z"


def _add_timestamp(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    record = event_dict.get("_record")  # a stdlib record: its own creation time
    event_dict["ts"] = utc_timestamp(record.created if record is not None else None)
    return event_dict


def _add_level(
    _logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    record = event_dict.get("_record")
    event_dict["level"] = record.levelname.lower() if record is not None else method
    if event_dict["level"] == "warn":
        event_dict["level"] = "warning"
    return event_dict


def _render(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    return render(event_dict)


_SHARED: list[Any] = [
    structlog.stdlib.add_logger_name,
    _add_level,
    _add_timestamp,
    structlog.processors.format_exc_info,
    redact_secrets,
]


class _LineHandler(logging.Handler):
    """Writes each formatted record as one line to the current stream (never raising)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record))
        except Exception:  # a broken record must not break logging
            self.handleError(record)


_min_level = logging.INFO
_stream: TextIO | None = None


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log event, ours and uvicorn's, to `stream` (stdout) as one JSON line."""
    global _min_level, _stream
    level_no = LEVELS[level]
    _min_level, _stream = level_no, stream
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _LineHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=_SHARED, processors=[_render])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Our access event replaces uvicorn's prose access log.
    logging.getLogger("uvicorn.access").disabled = True


def write_line(line: str) -> None:
    """One line to the log stream; a closed or full stdout must not fail a request."""
    stream = _stream if _stream is not None else sys.stdout
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def write_event(event: str, level: str = "info", **fields: Any) -> None:
    """One event line through the same renderer, without the processor chain (the per-request
    access line): the same keys, timestamp and scrubbing."""
    if LEVELS[level] < _min_level:
        return
    record: dict[str, Any] = {"ts": utc_timestamp(), "level": level, "event": event}
    record.update(fields)
    write_line(_ENCODER.encode(redact_secrets(None, level, record)))


def get_logger(name: str) -> Any:
    """A logger named for its component; its lines carry `"logger": name`."""
    return structlog.get_logger(name)
