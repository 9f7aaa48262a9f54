"""The parameters of one ping request, from the settings and the client's choices, in one place.

Both the HTTP route and `pingcalc ping` build a `PingPlan`, so the count default and bound,
the per-echo timeout, the interval, the deadline (T1499: every request is bounded in time)
and the family rule are decided once. The plan then runs a backend against a checked
`Destination`, streaming or not, and labels the result with the destination's name.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from pingcalc.ping.destination import Destination
from pingcalc.ping.errors import PlanError
from pingcalc.ping.interface import Echoes, Family, PingBackend, PingEvent, PingResult

FAMILIES: tuple[Family, ...] = (4, 6)


class PingSettings(Protocol):
    """The settings a plan reads (`pingcalc.settings.Settings` has them)."""

    @property
    def ping_default_count(self) -> int: ...
    @property
    def ping_max_count(self) -> int: ...
    @property
    def ping_timeout_seconds(self) -> float: ...
    @property
    def ping_interval_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PingPlan:
    """The echoes a backend is asked for, and the address family a name resolves to."""

    echoes: Echoes
    family: Family | None = None

    @classmethod
    def from_settings(
        cls, settings: PingSettings, *, count: int | None = None, family: int | None = None
    ) -> PingPlan:
        """The plan for a request; `PlanError` for a count or family out of bounds."""
        if count is None:
            count = settings.ping_default_count
        if isinstance(count, bool) or not isinstance(count, int):
            raise PlanError("count", "must be a whole number")
        if not 1 <= count <= settings.ping_max_count:
            raise PlanError(
                "count", f"between 1 and {settings.ping_max_count} echo requests per ping"
            )
        chosen: Family | None = None
        if family is not None:
            if isinstance(family, bool) or family not in FAMILIES:
                raise PlanError("family", "must be 4 or 6")
            chosen = 4 if family == 4 else 6
        echoes = Echoes.bounded(
            count,
            timeout=settings.ping_timeout_seconds,
            interval=settings.ping_interval_seconds,
        )
        return cls(echoes, chosen)

    async def stream(
        self, backend: PingBackend, destination: Destination
    ) -> AsyncGenerator[PingEvent | PingResult, None]:
        """Each `Reply`/`Lost` as it happens, then the result carrying the destination's name.

        Iterate inside `contextlib.aclosing(...)`; cancelling stops the echoes at once.
        """
        events = backend.stream(destination.address, self.echoes)
        async with contextlib.aclosing(events):
            async for item in events:
                yield self._label(item, destination) if isinstance(item, PingResult) else item

    async def run(self, backend: PingBackend, destination: Destination) -> PingResult:
        """The result alone, as `PingBackend.ping` gives it, carrying the destination's name."""
        result = await backend.ping(destination.address, self.echoes)
        return self._label(result, destination)

    @staticmethod
    def _label(result: PingResult, destination: Destination) -> PingResult:
        if destination.name is None:
            return result
        return dataclasses.replace(result, name=destination.name.ascii)
