"""Lookup slots: at most `total` lookups per process and `per_owner` per owner, never queued.

A slot is taken before a lookup starts and freed only when every holder has let go of it:
the request waiting for the answer and, for the system resolver, the thread running
`getaddrinfo`, which cannot be cancelled and may go on for seconds after the request has
timed out (glibc's own retries). Counting the owner's slots until that thread returns is what
stops one token from keeping every slot busy with names that never answer, while staying
within its rate limit: a timed-out lookup still counts against the token that asked for it
(resolver DoS, T1499). Thread-safe: lookup threads release slots themselves.
"""

from __future__ import annotations

import threading
from collections import Counter

from pingcalc.ping.errors import LookupShareError, ResolverBusyError
from pingcalc.ping.names import HostName


class LookupSlots:
    """The process's lookup slots, counted in all and per owner (a token name)."""

    def __init__(self, total: int, per_owner: int | None = None) -> None:
        self.total = total
        self.per_owner = per_owner
        self._lock = threading.Lock()
        self._held = 0
        self._by_owner: Counter[str] = Counter()

    @property
    def held(self) -> int:
        """Slots taken and not yet freed (timed-out lookups whose thread still runs included)."""
        with self._lock:
            return self._held

    def held_by(self, owner: str) -> int:
        """Slots `owner` holds now."""
        with self._lock:
            return self._by_owner[owner]

    def take(self, name: HostName, owner: str | None) -> Slot:
        """A slot for looking up `name` for `owner`, or the error that refuses it at once.

        The owner's share is checked first: a client at its share is told so (its own
        doing, 429) even when the process is full too.
        """
        share = self.per_owner
        with self._lock:
            if owner is not None and share is not None and self._by_owner[owner] >= share:
                raise LookupShareError(
                    name.ascii,
                    f"this client already has {share} host name lookups in flight, its "
                    "share; try again shortly",
                )
            if self._held >= self.total:
                raise ResolverBusyError(
                    name.ascii,
                    f"too many host name lookups in flight (at most {self.total}); "
                    "try again shortly",
                )
            self._held += 1
            if owner is not None:
                self._by_owner[owner] += 1
        return Slot(self, owner)

    def free(self, owner: str | None) -> None:
        """Give back one slot of `owner` (called by the slot's last holder, never directly)."""
        with self._lock:
            self._held -= 1
            if owner is not None:
                self._by_owner[owner] -= 1
                if self._by_owner[owner] <= 0:
                    del self._by_owner[owner]


class Slot:
    """One taken slot; freed when its last holder releases it (each holder exactly once)."""

    def __init__(self, slots: LookupSlots, owner: str | None) -> None:
        self._slots = slots
        self._owner = owner
        self._lock = threading.Lock()
        self._holders = 1  # whoever took it

    def keep(self) -> None:
        """Add a holder (a lookup thread), which must `release` the slot when it returns."""
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        """Drop one holder; the last one frees the slot."""
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self._slots.free(self._owner)
