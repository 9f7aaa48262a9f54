"""The ping engine: parse a target, apply the policy, send ICMP echoes. No HTTP in here.

address = parse_target(text)          # TargetSyntaxError
address = policy.check(address)       # TargetDeniedError
result = await backend.ping(address, count=3, timeout=1.0, interval=0.2, deadline=3.0)
"""

from __future__ import annotations

from pingcalc.ping.datagram import DatagramBackend
from pingcalc.ping.interface import (
    Address,
    BackendStatus,
    BackendUnavailableError,
    FamilyUnavailableError,
    PingBackend,
    PingError,
    PingResult,
    Reply,
    RttStats,
    deadline_for,
)
from pingcalc.ping.policy import TargetDeniedError, TargetPolicy
from pingcalc.ping.selection import (
    Preference,
    ReselectingBackend,
    UnavailableBackend,
    select_backend,
)
from pingcalc.ping.subprocess_backend import SubprocessBackend
from pingcalc.ping.target import TargetSyntaxError, parse_target

__all__ = [
    "Address",
    "BackendStatus",
    "BackendUnavailableError",
    "DatagramBackend",
    "FamilyUnavailableError",
    "PingBackend",
    "PingError",
    "PingResult",
    "Preference",
    "Reply",
    "ReselectingBackend",
    "RttStats",
    "SubprocessBackend",
    "TargetDeniedError",
    "TargetPolicy",
    "TargetSyntaxError",
    "UnavailableBackend",
    "deadline_for",
    "parse_target",
    "select_backend",
]
