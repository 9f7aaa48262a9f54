"""The default resolver: the C library's `getaddrinfo`, so `/etc/hosts`, nsswitch and the
host's DNS configuration apply, exactly as for any other program on the host.

`getaddrinfo` blocks and cannot be cancelled, so each lookup runs in its own daemon thread
and a slot is held until that thread has returned, not merely until we stop waiting: a
timed-out lookup still counts, so slow names cannot pile up threads behind the timeout
(resolver DoS, T1499). Daemon threads never delay the process's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from pingcalc.ping.errors import NameNotFoundError, ResolutionError, ResolverFailedError
from pingcalc.ping.interface import Address, Family
from pingcalc.ping.names import HostName
from pingcalc.ping.resolvers.interface import Resolver, busy

GetAddrInfo = Callable[..., list[tuple[Any, ...]]]

_FAMILIES = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}
# getaddrinfo's "no such name / no address" codes; EAI_NODATA and EAI_ADDRFAMILY are glibc's.
_NOT_FOUND = frozenset(
    code
    for code in (
        socket.EAI_NONAME,
        getattr(socket, "EAI_NODATA", None),
        getattr(socket, "EAI_ADDRFAMILY", None),
    )
    if code is not None
)


def _failure(name: HostName, exc: Exception) -> ResolutionError:
    """A fixed message per getaddrinfo error: its text can name internal servers."""
    if isinstance(exc, socket.gaierror) and exc.errno in _NOT_FOUND:
        return NameNotFoundError(name.ascii, f"{name} does not exist or has no address")
    if isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN:
        return ResolverFailedError(
            name.ascii, f"the system resolver could not look up {name} (temporary failure)"
        )
    return ResolverFailedError(name.ascii, f"the system resolver failed to look up {name}")


def _addresses(infos: list[tuple[Any, ...]]) -> list[Address]:
    found: list[Address] = []
    for family, *_rest, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # An IPv6 sockaddr may carry "%zone"; the address without it is what policy judges.
        found.append(ip_address(str(sockaddr[0]).split("%", 1)[0]))
    return found


class SystemResolver(Resolver):
    """`getaddrinfo` in one daemon thread per lookup, at most `max_in_flight` threads."""

    kind = "system"

    def __init__(
        self,
        *,
        timeout: float,
        max_in_flight: int,
        getaddrinfo: GetAddrInfo = socket.getaddrinfo,
    ) -> None:
        super().__init__(timeout=timeout, max_in_flight=max_in_flight)
        self._getaddrinfo = getaddrinfo
        self._lock = threading.Lock()
        self._threads = 0

    @property
    def threads(self) -> int:
        """Lookup threads that have not returned yet (including timed-out ones)."""
        with self._lock:
            return self._threads

    async def _lookup(self, name: HostName, family: Family | None) -> list[Address]:
        with self._lock:
            if self._threads >= self.max_in_flight:
                raise busy(name, self.max_in_flight)
            self._threads += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Address]] = loop.create_future()
        thread = threading.Thread(
            target=self._run,
            args=(loop, future, name, family),
            name="pingcalc-resolve",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:
            with self._lock:
                self._threads -= 1
            raise ResolverFailedError(name.ascii, "cannot start a lookup thread") from None
        return await future

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[list[Address]],
        name: HostName,
        family: Family | None,
    ) -> None:
        """In the lookup thread: ask getaddrinfo, free the slot, hand the outcome to the loop."""
        outcome: list[Address] | ResolutionError
        try:
            infos = self._getaddrinfo(
                name.ascii, None, family=_FAMILIES[family], type=socket.SOCK_DGRAM
            )
            outcome = _addresses(infos)
        except Exception as exc:  # every failure becomes a fixed message
            outcome = _failure(name, exc)
        finally:
            with self._lock:
                self._threads -= 1
        # The loop may be gone (the process is exiting): then nobody waits for the answer.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[list[Address]], outcome: list[Address] | Exception) -> None:
    if future.done():  # the waiter timed out or was cancelled
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
