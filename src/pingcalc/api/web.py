"""The browser page: `GET /` and its few static files, under a strict same-origin CSP.

The files ship inside the package (`pingcalc/web/static`) and are read once at import. A
URL name is only ever a key into a fixed table, never part of a filesystem path, so there
is no directory listing and no path traversal to get wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pingcalc.api.problems import Problem

# Replaces the API's `default-src 'none'` for the page and its assets only. Everything is
# same-origin and there is no inline script or style, so an injected tag cannot run
# (stored/reflected XSS), exfiltrate through fetch or images, frame the page
# (clickjacking), re-base relative URLs (<base> injection) or post a form elsewhere.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# The only files served: name -> media type. Anything else under /static is a 404.
ASSET_TYPES: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
INDEX_NAME = "index.html"
INDEX_TYPE = "text/html; charset=utf-8"

# Assets are revalidated on every use (cheap 304s): a page and a script of different
# versions must never meet after an upgrade. The page itself is never stored.
ASSET_CACHE_CONTROL = "no-cache"
INDEX_CACHE_CONTROL = "no-store"


@dataclass(frozen=True)
class StaticFile:
    """One file's bytes, media type and validator."""

    body: bytes
    media_type: str
    etag: str


def _load(name: str, media_type: str) -> StaticFile:
    body = (files("pingcalc.web") / "static" / name).read_bytes()
    return StaticFile(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


# Read at import: a missing file fails the start-up, not the first visitor.
INDEX = _load(INDEX_NAME, INDEX_TYPE)
ASSETS: dict[str, StaticFile] = {name: _load(name, kind) for name, kind in ASSET_TYPES.items()}

router = APIRouter(include_in_schema=False)


def _headers(file: StaticFile, cache_control: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": PAGE_CSP,
        "Cache-Control": cache_control,
        "ETag": file.etag,
        # No other window may hold a reference to the page (tab-nabbing, XS-leaks).
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def _respond(request: Request, file: StaticFile, cache_control: str) -> Response:
    headers = _headers(file, cache_control)
    if file.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    """The page with the ping and calculate forms."""
    return _respond(request, INDEX, INDEX_CACHE_CONTROL)


@router.get("/static/{name}")
async def static_file(request: Request, name: str) -> Response:
    """One file of the fixed allow-list."""
    file = ASSETS.get(name)
    if file is None:
        raise Problem(404, "there is no such static file", kind="not-found")
    return _respond(request, file, ASSET_CACHE_CONTROL)
