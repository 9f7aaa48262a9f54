"""Choose the backend once, at start-up, and say why (for the log and `pingcalc check`)."""

from __future__ import annotations

import shutil
import socket
from typing import Literal

from pingcalc.ping.datagram import DatagramBackend, open_socket
from pingcalc.ping.interface import (
    Address,
    BackendUnavailableError,
    EventSink,
    PingBackend,
    PingResult,
)
from pingcalc.ping.subprocess_backend import SubprocessBackend

Preference = Literal["auto", "datagram", "subprocess"]

# Where `ping` is looked for: a fixed system path, never the caller's PATH (binary planting).
PING_SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class UnavailableBackend(PingBackend):
    """Stands in when no backend works: the server still runs, every ping answers 503."""

    name = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def ping(
        self,
        address: Address,
        *,
        count: int,
        timeout: float,  # noqa: ASYNC109 - per-echo reply wait, not a call timeout
        interval: float,
        deadline: float,
        on_event: EventSink | None = None,
    ) -> PingResult:
        """Always `BackendUnavailableError` with the reason found at start-up."""
        raise BackendUnavailableError(f"no ping backend is available: {self.reason}")


def probe_datagram() -> str | None:
    """None if this process may open a datagram ICMP socket, else the reason it may not."""
    try:
        open_socket(socket.AF_INET).close()
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def find_ping() -> str | None:
    """The absolute path of the system `ping`, if installed."""
    return shutil.which("ping", path=PING_SEARCH_PATH)


def select_backend(
    preference: Preference = "auto", *, ping_path: str | None = None
) -> tuple[PingBackend, str]:
    """The backend to use and a one-line reason.

    `auto` prefers datagram sockets and falls back to the `ping` binary, then to a backend
    that refuses every request (so calculate keeps working). An explicit preference that
    cannot work raises `BackendUnavailableError`: the operator asked for it, so fail fast.
    """
    path = ping_path or find_ping()
    if preference in ("auto", "datagram"):
        problem = probe_datagram()
        if problem is None:
            return DatagramBackend(), "datagram ICMP sockets are permitted (no subprocess)"
        if preference == "datagram":
            raise BackendUnavailableError(f"PINGCALC_PING_BACKEND=datagram, but {problem}")
        if path is not None:
            return SubprocessBackend(path), f"{problem}; falling back to {path}"
        reason = f"{problem}, and no ping binary in {PING_SEARCH_PATH}"
        return UnavailableBackend(reason), reason
    if path is None:
        raise BackendUnavailableError(
            f"PINGCALC_PING_BACKEND=subprocess, but there is no ping binary in {PING_SEARCH_PATH}"
        )
    return SubprocessBackend(path), f"configured: {path} (one process per request)"
