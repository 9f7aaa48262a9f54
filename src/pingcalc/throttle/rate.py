"""A rate such as "300/minute": how many events a period admits, and its GCRA interval."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pingcalc.throttle.errors import RateSyntaxError

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# "300/minute", "300 per minute", "10/5 seconds", "1000000/second".
_RATE = re.compile(
    r"\s*(?P<count>[1-9][0-9]{0,9})\s*(?:/|per\s)\s*(?P<multiple>[1-9][0-9]{0,5})?\s*"
    r"(?P<unit>second|minute|hour|day)s?\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` events per `period` seconds.

    As a GCRA (generic cell rate algorithm): one event every `interval` seconds, with a burst
    of up to `count` at once. So any `period`-long window that starts with a full budget
    admits exactly `count`, and the budget refills evenly instead of all at once: there is
    no window boundary at which twice the budget gets through (the fixed-window flaw).
    """

    count: int
    period: float
    text: str

    @property
    def interval(self) -> float:
        """Seconds each admitted event occupies."""
        return self.period / self.count

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.fullmatch(text)
        if match is None:
            raise RateSyntaxError(
                f"{text!r} is not a rate such as '60/minute' (N/second, minute, hour or day)"
            )
        multiple = int(match["multiple"] or 1)
        period = float(multiple * _UNITS[match["unit"].lower()])
        return cls(int(match["count"]), period, text.strip())

    def __str__(self) -> str:
        return self.text
