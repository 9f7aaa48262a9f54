"""An app with probe routes behind each scope, so foundation tests need no domain route."""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, ValidationError

from pingcalc.api.admission import admit, require_json
from pingcalc.api.edge import Edge
from pingcalc.api.exchange import Exchange
from pingcalc.api.problems import invalid_body
from pingcalc.api.routing import Route
from pingcalc.app import create_app
from pingcalc.services import Services, build_services
from pingcalc.settings import Scope, Settings
from tests_support import HTTPResponse


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def probe_routes(services: Services) -> list[Route]:
    """`/probe/{scope}` behind each scope, an echo of a JSON body and a route that raises."""

    def behind(scope: Scope) -> Route:
        async def probe(ex: Exchange) -> None:
            record = await admit(ex, services.gate, services.audit, scope)
            await ex.respond(200, json.dumps({"token": record.name}).encode())

        return Route("GET", f"/probe/{scope}", probe)

    async def echo(ex: Exchange) -> None:
        await admit(ex, services.gate, services.audit, "calculate")
        require_json(ex)
        try:
            body = Echo.model_validate_json(await ex.read_body())
        except ValidationError as exc:
            raise invalid_body(exc) from None
        await ex.respond(200, json.dumps({"text": body.text}).encode())

    async def boom(ex: Exchange) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    return [
        behind("ping"),
        behind("calculate"),
        Route("POST", "/probe/echo", echo),
        Route("GET", "/probe/boom", boom),
    ]


def probe_app(settings: Settings) -> Edge:
    """create_app plus the probe routes."""
    services = build_services(settings)
    return create_app(settings, services, extra_routes=probe_routes(services))


def probe_past_the_limit(
    client: TestClient, headers: Mapping[str, str], allowed: int
) -> HTTPResponse:
    """GET /probe/ping `allowed` times, each served (200), and return the answer to the next
    request: the first one past a limit of `allowed`."""
    codes = [client.get("/probe/ping", headers=headers).status_code for _ in range(allowed)]
    assert codes == [200] * allowed, codes
    return client.get("/probe/ping", headers=headers)
