"""The ping engine: check a target, resolve a name once, apply the policy, send ICMP echoes.

No HTTP in here; every error is in `pingcalc.ping.errors` (the tree is in its docstring).

plan = PingPlan.from_settings(settings, count=3, family=None)       # PlanError
resolver = select_resolver(settings.ping_resolver, timeout=2.0, max_in_flight=16, max_per_owner=4)
destination = await resolve_target(text, policy=policy, resolver=resolver, family=plan.family)
    # TargetSyntaxError/NameSyntaxError, TargetDeniedError/NameDeniedError, ResolutionError
    # (or, to refuse a bad target before taking a slot: check_target, then resolve_name)
result = await plan.run(backend, destination)                      # or, live:
async with contextlib.aclosing(plan.stream(backend, destination)) as events:
    async for item in events: ...                                  # Reply | Lost, then PingResult
"""

from __future__ import annotations

from pingcalc.ping.datagram import DatagramBackend
from pingcalc.ping.destination import Destination, check_target, resolve_name, resolve_target
from pingcalc.ping.errors import (
    BackendUnavailableError,
    FamilyUnavailableError,
    LookupShareError,
    NameDeniedError,
    NameNotFoundError,
    NameSyntaxError,
    PingError,
    PlanError,
    ResolutionError,
    ResolverBusyError,
    ResolverFailedError,
    ResolverTimeoutError,
    TargetDeniedError,
    TargetSyntaxError,
    TooManyAddressesError,
)
from pingcalc.ping.interface import (
    Address,
    BackendStatus,
    Echoes,
    EventSink,
    Family,
    Lost,
    PingBackend,
    PingEvent,
    PingResult,
    Reply,
    RttStats,
    deadline_for,
)
from pingcalc.ping.names import HostName, check_name
from pingcalc.ping.plan import PingPlan
from pingcalc.ping.policy import TargetPolicy
from pingcalc.ping.resolvers import (
    NameServerResolver,
    Resolver,
    SystemResolver,
    parse_resolver_setting,
    select_resolver,
)
from pingcalc.ping.selection import (
    Preference,
    ReselectingBackend,
    UnavailableBackend,
    select_backend,
)
from pingcalc.ping.subprocess_backend import SubprocessBackend
from pingcalc.ping.target import parse_host, parse_target

__all__ = [
    "Address",
    "BackendStatus",
    "BackendUnavailableError",
    "DatagramBackend",
    "Destination",
    "Echoes",
    "EventSink",
    "Family",
    "FamilyUnavailableError",
    "HostName",
    "LookupShareError",
    "Lost",
    "NameDeniedError",
    "NameNotFoundError",
    "NameServerResolver",
    "NameSyntaxError",
    "PingBackend",
    "PingError",
    "PingEvent",
    "PingPlan",
    "PingResult",
    "PlanError",
    "Preference",
    "Reply",
    "ReselectingBackend",
    "ResolutionError",
    "Resolver",
    "ResolverBusyError",
    "ResolverFailedError",
    "ResolverTimeoutError",
    "RttStats",
    "SubprocessBackend",
    "SystemResolver",
    "TargetDeniedError",
    "TargetPolicy",
    "TargetSyntaxError",
    "TooManyAddressesError",
    "UnavailableBackend",
    "check_name",
    "check_target",
    "deadline_for",
    "parse_host",
    "parse_resolver_setting",
    "parse_target",
    "resolve_name",
    "resolve_target",
    "select_backend",
    "select_resolver",
]
