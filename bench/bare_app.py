"""The baseline of the HTTP benchmark: a bare FastAPI app with none of pingcalc's controls.

What issue 19 sets as the bar: FastAPI with a pydantic body model answering
`eval(compile(expression))` with no builtins, and `{"status": "ok"}` on /healthz, under plain
uvicorn with httptools (no header cap, no deadlines, no connection cap). No authentication,
rate limits, audit, access log, request ids or security headers. pingcalc's requests per
server CPU-second over this app's is what every control costs, net of what pingcalc saves
elsewhere.

Run: `python -m bench.bare_app PORT`.
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


def main(port: int) -> None:
    """Serve on 127.0.0.1:`port` under plain uvicorn (httptools, no access log)."""
    uvicorn.run(
        create_bare_app(),
        host="127.0.0.1",
        port=port,
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
