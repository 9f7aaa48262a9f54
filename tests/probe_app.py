"""An app with probe routes behind each scope, so foundation tests need no domain route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict

from pingcalc.api.deps import require
from pingcalc.app import create_app
from pingcalc.auth import TokenRecord
from pingcalc.settings import Settings


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def probe_app(settings: Settings) -> FastAPI:
    """create_app plus `/probe/{scope}` routes and a route that raises."""
    app = create_app(settings)

    @app.get("/probe/ping")
    async def probe_ping(
        record: Annotated[TokenRecord, Depends(require("ping"))],
    ) -> dict[str, str]:
        return {"token": record.name}

    @app.get("/probe/calculate")
    async def probe_calc(
        record: Annotated[TokenRecord, Depends(require("calculate"))],
    ) -> dict[str, str]:
        return {"token": record.name}

    @app.post("/probe/echo")
    async def probe_echo(
        body: Echo, record: Annotated[TokenRecord, Depends(require("calculate"))]
    ) -> dict[str, str]:
        return {"text": body.text}

    @app.get("/probe/boom")
    async def probe_boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    return app
