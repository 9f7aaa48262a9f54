"""The baseline of the HTTP benchmark: FastAPI doing pingcalc's evaluation and nothing else.

The same request and response models, the same `Evaluator` (built by
`services.build_evaluator` from the default settings) and the same uvicorn options as
`pingcalc serve`, but no authentication, rate limits, audit, access log, request ids or
security headers. pingcalc's requests/s over this app's is
the cost of those layers.

Run: `python -m bench.bare_app PORT`.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from pingcalc.api.calculate import CalculateRequest, CalculateResponse
from pingcalc.calc import CalcError
from pingcalc.server import uvicorn_options
from pingcalc.services import build_evaluator
from pingcalc.settings import Settings


def create_bare_app(settings: Settings) -> FastAPI:
    """FastAPI with the two benchmarked routes and no security layers."""
    evaluator = build_evaluator(settings)
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/calculate", response_model=CalculateResponse)
    async def calculate(body: CalculateRequest) -> CalculateResponse | JSONResponse:
        try:
            result = evaluator.evaluate(body.expression)
        except CalcError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return CalculateResponse(expression=body.expression, result=result)

    return app


def main(port: int) -> None:
    """Serve on 127.0.0.1:`port` with pingcalc's own uvicorn options."""
    settings = Settings(port=port, tokens_file="/nonexistent")
    uvicorn.Server(uvicorn.Config(create_bare_app(settings), **uvicorn_options(settings))).run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
