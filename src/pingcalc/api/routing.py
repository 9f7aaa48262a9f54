"""The route table: (method, path) -> handler, plus what the OpenAPI document says of each.

Exact paths are one dictionary lookup; a route may instead own every path under a prefix
(the page's static files). No path parameters, no regular expressions, no per-request
dependency resolution: the hot routes cost a lookup and a call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pingcalc.api.exchange import Exchange

if TYPE_CHECKING:
    from pingcalc.api.openapi import Operation

Handler = Callable[[Exchange], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: `path` exact, or every path starting with it when `prefix`."""

    method: str
    path: str
    handler: Handler
    operation: Operation | None = None  # None: not in the OpenAPI document
    prefix: bool = False


class Router:
    """Finds the routes of a path: {method: route}."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self._exact: dict[str, dict[str, Route]] = {}
        self._prefixes: list[tuple[str, dict[str, Route]]] = []
        for route in self.routes:
            if route.prefix:
                for prefix, methods in self._prefixes:
                    if prefix == route.path:
                        methods[route.method] = route
                        break
                else:
                    self._prefixes.append((route.path, {route.method: route}))
            else:
                self._exact.setdefault(route.path, {})[route.method] = route

    def find(self, path: str) -> dict[str, Route] | None:
        methods = self._exact.get(path)
        if methods is not None:
            return methods
        for prefix, methods in self._prefixes:
            if path.startswith(prefix):
                return methods
        return None


def allowed_methods(methods: dict[str, Route]) -> str:
    """The Allow header of a 405: GET implies HEAD."""
    names = set(methods)
    if "GET" in names:
        names.add("HEAD")
    return ", ".join(sorted(names))
