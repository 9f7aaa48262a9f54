"""`GET /docs`: the API reference a FastAPI user expects, served from the package itself.

FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN and start them with an
inline script, which the site's CSP forbids (and a third party's script on an admin page is
a supply-chain risk). The checked alternative, PyPI's swagger-ui-bundle 1.1.0 (Apache-2.0),
ships Swagger UI 4.15.5 from 2022 and 8.3 MB of files with source maps. Instead, a small page
of our own renders `/openapi.json` with a "Try it" form: three files in
`pingcalc/web/static`, same-origin only, under their own CSP that allows nothing but 'self'.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pingcalc.api.problems import Problem

# Like the page's CSP: scripts, styles, images and fetches from this origin only; no inline
# code, no framing, no <base>, no form posts anywhere (the "Try it" form is sent by fetch).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True)
class StaticFile:
    """One file's bytes, media type and validator, read once at import."""

    body: bytes
    media_type: str
    etag: str


def _load(name: str, media_type: str) -> StaticFile:
    body = (files("pingcalc.web") / "static" / name).read_bytes()
    return StaticFile(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


PAGE = _load("docs.html", "text/html; charset=utf-8")
ASSETS: dict[str, StaticFile] = {
    "docs.js": _load("docs.js", "text/javascript; charset=utf-8"),
    "docs.css": _load("docs.css", "text/css; charset=utf-8"),
}

router = APIRouter(include_in_schema=False)


def _respond(request: Request, file: StaticFile) -> Response:
    headers = {
        "Content-Security-Policy": DOCS_CSP,
        "Cache-Control": "no-cache",
        "ETag": file.etag,
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if file.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


@router.get("/docs")
async def docs(request: Request) -> Response:
    """The reference page; it fetches /openapi.json."""
    return _respond(request, PAGE)


@router.get("/docs/{name}")
async def docs_asset(request: Request, name: str) -> Response:
    """The page's script and style sheet; any other name is a 404 (a fixed table, no paths)."""
    file = ASSETS.get(name)
    if file is None:
        raise Problem(404, "there is no such file", kind="not-found")
    return _respond(request, file)
