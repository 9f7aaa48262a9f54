"""The baseline of the HTTP benchmark: a bare FastAPI app with none of pingcalc's controls.

What issue 19 sets as the bar: FastAPI with a pydantic body model answering
`eval(compile(expression))` with no builtins, and `{"status": "ok"}` on /healthz, under plain
uvicorn with httptools (no header cap, no deadlines, no connection cap). No authentication,
rate limits, audit, access log, request ids or security headers. pingcalc's requests per
server CPU-second over this app's is what every control costs, net of what pingcalc saves
elsewhere.

Run: `python -m bench.bare_app PORT [HOST]` (HOST 127.0.0.1 by default; the bare-app image
of bench/bench_container.py passes 0.0.0.0). This file imports nothing from the project, so
that image holds it alone.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

NO_BUILTINS: dict[str, Any] = {"__builtins__": {}}


class CalculateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    expression: str


class CalculateResponse(BaseModel):
    expression: str
    result: int | float


def create_bare_app() -> FastAPI:
    """FastAPI with the two benchmarked routes and no security layers."""
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/calculate", response_model=CalculateResponse)
    async def calculate(body: CalculateRequest) -> CalculateResponse | JSONResponse:
        try:
            code = compile(body.expression, "<expression>", "eval")
            result = eval(code, NO_BUILTINS)  # the baseline, never pingcalc
        except Exception as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return CalculateResponse(expression=body.expression, result=result)

    return app


# Plain uvicorn: httptools, the default loop (uvloop when installed), no log configuration,
# no access log, no banner. bench/bare_starlette_app.py runs under exactly these.
UVICORN_OPTIONS: dict[str, Any] = {
    "http": "httptools",
    "log_config": None,
    "access_log": False,
    "server_header": False,
}


def main(port: int, host: str = "127.0.0.1") -> None:
    """Serve on `host`:`port` under plain uvicorn (`UVICORN_OPTIONS`)."""
    uvicorn.run(create_bare_app(), host=host, port=port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:3])
