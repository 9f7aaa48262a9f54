"""The second baseline of the HTTP benchmark: the same two routes on Starlette alone.

No FastAPI, no pydantic: the body is `json.loads`-ed and checked by hand (an object with one
string `expression`, as bench/bare_app.py's strict model demands), answered with
`eval(compile(expression))` with no builtins, and `{"status": "ok"}` on /healthz, under the
same uvicorn options as bench/bare_app.py. It shows what the framework layer alone costs.

Run: `python -m bench.bare_starlette_app PORT [HOST]`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.bare_app import UVICORN_OPTIONS

NO_BUILTINS: dict[str, Any] = {"__builtins__": {}}


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def calculate(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"detail": "the body is not JSON"}, status_code=422)
    if not isinstance(body, dict) or set(body) != {"expression"}:
        return JSONResponse({"detail": "send exactly one field, expression"}, status_code=422)
    expression = body["expression"]
    if not isinstance(expression, str):
        return JSONResponse({"detail": "expression must be a string"}, status_code=422)
    try:
        code = compile(expression, "<expression>", "eval")
        result = eval(code, NO_BUILTINS)  # the baseline, never pingcalc
    except Exception as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    return JSONResponse({"expression": expression, "result": result})


def create_bare_starlette_app() -> Starlette:
    """Starlette with the two benchmarked routes and no security layers."""
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/api/v1/calculate", calculate, methods=["POST"]),
        ]
    )


def main(port: int, host: str = "127.0.0.1") -> None:
    """Serve on `host`:`port` under bench/bare_app.py's uvicorn options."""
    uvicorn.run(create_bare_starlette_app(), host=host, port=port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:3])
