"""Choose the backend, say why, and choose again while none works (no restart needed).

`select_backend` runs at start-up (and for the CLI); `ReselectingBackend` wraps its choice for
the server: while no backend works, or after the chosen one failed, selection runs again at
most every `RESELECT_INTERVAL_SECONDS`, so opening `net.ipv4.ping_group_range` or installing
iputils-ping makes the next ping work within seconds, and the change is reported once.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pingcalc.ping.datagram import DatagramBackend, open_socket
from pingcalc.ping.errors import FamilyUnavailableError
from pingcalc.ping.interface import (
    Address,
    BackendStatus,
    BackendUnavailableError,
    Echoes,
    EventSink,
    PingBackend,
    PingResult,
)
from pingcalc.ping.subprocess_backend import SubprocessBackend

Preference = Literal["auto", "datagram", "subprocess"]

# Where `ping` is looked for: a fixed system path, never the caller's PATH (binary planting).
PING_SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# While no backend works, selection runs again at most this often: a sysctl change or a new
# ping binary is noticed within seconds, and a flood of pings is not a flood of probes.
RESELECT_INTERVAL_SECONDS = 2.0


class UnavailableBackend(PingBackend):
    """Stands in when no backend works: the server still runs, every ping answers 503."""

    name = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason  # what selection found: in every 503, /readyz and `pingcalc check`

    async def ping(
        self, address: Address, echoes: Echoes, on_event: EventSink | None = None
    ) -> PingResult:
        """Always `BackendUnavailableError` with the reason found at start-up."""
        raise BackendUnavailableError(f"no ping backend is available: {self.reason}")

    def status(self) -> BackendStatus:
        return BackendStatus(False, self.name, self.reason, operator_fix())


def operator_fix(gid: int | None = None) -> str:
    """The commands that make a ping backend work here, naming this process's group."""
    gid = os.getgid() if gid is None else gid
    return (
        'sysctl -w net.ipv4.ping_group_range="0 2147483647" (every group; or '
        f'"{gid} {gid}" for this service\'s group only), or install iputils-ping '
        "(apt-get install -y iputils-ping)"
    )


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


def check_binary(path: str) -> str | None:
    """None if `path` is a ping binary this process may run, else why not.

    The path comes from the operator (PINGCALC_PING_BINARY), never from PATH; a binary that
    someone other than root or us could replace would run their code (binary planting).
    """
    if not Path(path).is_absolute():
        return f"{path} is not an absolute path"
    try:
        info = Path(path).stat()
    except OSError as exc:
        return f"no ping binary at {path} ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
        return f"{path} is not an executable file"
    if info.st_uid not in (0, os.geteuid()) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{path} could be replaced by another user (owner uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):04o}); refusing to run it"
        )
    return None


def select_backend(
    preference: Preference = "auto", *, ping_path: str | None = None
) -> tuple[PingBackend, str]:
    """The backend to use and a one-line reason.

    `ping_path` is the binary to fall back to (checked by `check_binary`); without it `ping`
    is looked for in `PING_SEARCH_PATH`. `auto` prefers datagram sockets and falls back to
    the binary, then to a backend that refuses every request (so calculate keeps working). An
    explicit preference that cannot work raises `BackendUnavailableError`: the operator asked
    for it, so fail fast.
    """
    if ping_path is not None:
        missing = check_binary(ping_path)
        path = None if missing else ping_path
    else:
        path = find_ping()
        missing = None if path else f"no ping binary in {PING_SEARCH_PATH}"
    if preference in ("auto", "datagram"):
        problem = probe_datagram()
        if problem is None:
            return DatagramBackend(), "datagram ICMP sockets are permitted (no subprocess)"
        if preference == "datagram":
            raise BackendUnavailableError(f"PINGCALC_PING_BACKEND=datagram, but {problem}")
        if path is not None:
            return SubprocessBackend(path), f"{problem}; falling back to {path}"
        reason = f"{problem}, and {missing}"
        return UnavailableBackend(reason), reason
    if path is None:
        raise BackendUnavailableError(f"PINGCALC_PING_BACKEND=subprocess, but {missing}")
    return SubprocessBackend(path), f"configured: {path} (one process per request)"


# Told once per change of backend: {"backend", "previous", "reason", "available"}.
SwitchObserver = Callable[[dict[str, Any]], object]


class ReselectingBackend(PingBackend):
    """The selected backend, selected again while pings cannot be sent (rate-limited)."""

    def __init__(
        self,
        preference: Preference = "auto",
        *,
        ping_path: str | None = None,
        on_switch: SwitchObserver | None = None,
        interval: float = RESELECT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.preference = preference
        self.ping_path = ping_path
        self.on_switch = on_switch
        self.interval = interval
        self.clock = clock
        # An explicit preference that cannot work raises here: start-up fails, as before.
        self.current, self.reason = select_backend(preference, ping_path=ping_path)
        self.name = self.current.name
        self._selected_at = clock()
        self._failure: str | None = None  # the chosen backend failed at run time

    def status(self) -> BackendStatus:
        """Available now? Looks again first if nothing worked and the interval has passed."""
        self._reselect_if_due()
        if self._failure is not None:
            return BackendStatus(False, self.name, self._failure, operator_fix())
        if isinstance(self.current, UnavailableBackend):
            return self.current.status()
        return BackendStatus(True, self.name, self.reason)

    async def ping(
        self, address: Address, echoes: Echoes, on_event: EventSink | None = None
    ) -> PingResult:
        """Ping with the current backend; a backend that stopped working is replaced once."""
        self._reselect_if_due()
        backend = self.current
        try:
            result = await backend.ping(address, echoes, on_event)
        except FamilyUnavailableError:
            raise  # the host has no IPv6; the backend itself is fine
        except BackendUnavailableError as exc:
            if isinstance(backend, UnavailableBackend):
                raise
            self._failure = str(exc)
            if not self._reselect_if_due() or self.current is backend:
                raise
            # Another backend works now (e.g. the binary after the sysctl was closed): one retry.
            return await self.ping(address, echoes, on_event)
        self._failure = None
        return result

    def _reselect_if_due(self) -> bool:
        """Select again if pings cannot be sent and the interval passed; True if it changed."""
        working = self._failure is None and not isinstance(self.current, UnavailableBackend)
        now = self.clock()
        if working or now - self._selected_at < self.interval:
            return False
        self._selected_at = now
        previous = self.current
        try:
            backend, reason = select_backend(self.preference, ping_path=self.ping_path)
        except BackendUnavailableError as exc:  # an explicit preference that stopped working
            backend, reason = UnavailableBackend(str(exc)), str(exc)
        if type(backend) is type(previous) and getattr(backend, "ping_path", None) == getattr(
            previous, "ping_path", None
        ):
            return False  # same choice: keep the failure (if any) until a ping succeeds
        self.current, self.reason, self.name = backend, reason, backend.name
        self._failure = None
        if self.on_switch is not None:
            self.on_switch(
                {
                    "backend": backend.name,
                    "previous": previous.name,
                    "reason": reason,
                    "available": not isinstance(backend, UnavailableBackend),
                }
            )
        return True
