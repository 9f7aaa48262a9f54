"""The stdout sink: every record as one JSON line marked ``"log": "audit"``.

The line is the record itself, flat, with `log` first so a log pipeline can route audit lines
apart from access lines. It never fails the caller: a closed or full stdout drops the line.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from pingcalc.audit.chain import dumps


def render(record: dict[str, Any], line: str | None = None) -> str:
    """`{"log":"audit", ...record}` as one line, without copying the record; `line` is the
    record's JSON when a durable sink already made it."""
    return '{"log":"audit",' + (line or dumps(record))[1:]


class StdoutSink:
    """Writes records to `stream` (default: whatever `sys.stdout` is at the time)."""

    name = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, record: dict[str, Any], line: str | None = None) -> None:
        """Print `record`; a closed or full stream must not stop requests."""
        stream = self._stream or sys.stdout
        try:  # try/except, not contextlib.suppress: this runs for every request
            stream.write(render(record, line) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        """Nothing to release: the stream belongs to the process."""
