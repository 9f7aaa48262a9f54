"""Tell the operator at start-up which ping backend runs, or why none does and how to fix it.

A host with `net.ipv4.ping_group_range = "1 0"` and no `ping` binary (many distributions'
default) cannot ping at all. The server still starts (calculate works), so the one place an
operator learns why every ping answers 503 is this WARNING: one JSON event in the log and,
when stderr is a terminal (someone ran `pingcalc serve` by hand), the same in plain text.
"""

from __future__ import annotations

import sys
from typing import TextIO

from pingcalc.logs import get_logger
from pingcalc.ping.interface import BackendStatus
from pingcalc.ping.selection import RESELECT_INTERVAL_SECONDS


def plain_text(status: BackendStatus) -> str:
    """The warning for a terminal: the cause, the fix, and what happens meanwhile."""
    return (
        f"pingcalc: WARNING: ping is unavailable: {status.reason}\n"
        f"pingcalc: fix: {status.fix}\n"
        "pingcalc: calculate works; every ping answers 503 until then. The server looks again "
        f"every {RESELECT_INTERVAL_SECONDS:g} s while pings fail: no restart needed.\n"
    )


def announce(status: BackendStatus, *, stderr: TextIO | None = None) -> None:
    """Log the backend (info), or the missing backend with its fix (warning, and plain text)."""
    log = get_logger("pingcalc.ping")
    if status.available:
        log.info("ping_backend_selected", backend=status.backend, reason=status.reason)
        return
    log.warning("ping_unavailable", backend=status.backend, reason=status.reason, fix=status.fix)
    stream = stderr if stderr is not None else sys.stderr
    try:
        if stream.isatty():
            stream.write(plain_text(status))
            stream.flush()
    except (OSError, ValueError):  # a closed stderr must not stop the start-up
        pass
