"""Resolvers of checked host names: the system's (default) and a given name server's.

resolver = select_resolver("system", timeout=2.0, max_in_flight=16)
addresses = await resolver.resolve(check_name("example.com"), family=4)
"""

from __future__ import annotations

import importlib.util
import re

from pingcalc.ping.errors import TargetSyntaxError
from pingcalc.ping.interface import Address
from pingcalc.ping.resolvers.interface import Resolver
from pingcalc.ping.resolvers.nameserver import NameServerResolver
from pingcalc.ping.resolvers.system import SystemResolver
from pingcalc.ping.target import parse_target

__all__ = [
    "NameServerResolver",
    "Resolver",
    "SystemResolver",
    "check_resolver_setting",
    "parse_resolver_setting",
    "select_resolver",
]

SYSTEM = "system"
DNS_PORT = 53
_DNS_URL = re.compile(
    r"dns://(?:(?P<v4>[0-9.]+)|\[(?P<v6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{1,5}))?"
)


def parse_resolver_setting(text: str) -> tuple[Address, int] | None:
    """None for `system`, else the (address, port) of `dns://IP[:PORT]`; ValueError if neither."""
    if text == SYSTEM:
        return None
    match = _DNS_URL.fullmatch(text)
    if match is None:
        raise ValueError("must be 'system' or 'dns://IP[:PORT]' (an IPv6 address in brackets)")
    try:
        address = parse_target(match["v4"] or match["v6"])
    except TargetSyntaxError as exc:
        raise ValueError(f"the name server must be a canonical IP address: {exc}") from None
    port = int(match["port"] or DNS_PORT)
    if not 1 <= port <= 65535:
        raise ValueError("the name server port must be 1-65535")
    return address, port


def check_resolver_setting(text: str) -> str:
    """`text` if it names a resolver this installation can run, else ValueError (start-up)."""
    if parse_resolver_setting(text) is not None and importlib.util.find_spec("dns") is None:
        raise ValueError(
            "dns:// needs the dnspython package, which only the development install has; "
            "use 'system' (the host's resolver) in production"
        )
    return text


def select_resolver(setting: str, *, timeout: float, max_in_flight: int) -> Resolver:
    """The resolver `PINGCALC_PING_RESOLVER` names, with the lookup bounds."""
    server = parse_resolver_setting(setting)
    if server is None:
        return SystemResolver(timeout=timeout, max_in_flight=max_in_flight)
    return NameServerResolver(*server, timeout=timeout, max_in_flight=max_in_flight)
