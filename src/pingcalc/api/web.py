"""The browser page: `GET /` and its few static files, under a strict same-origin CSP.

The files ship inside the package (`pingcalc/web/static`) and are read once at import. A
URL name is only ever a key into a fixed table, never part of a filesystem path, so there
is no directory listing and no path traversal to get wrong. One entry is data rather than a
file: `calc-reference.json`, the calculator's syntax under this server's bounds
(`pingcalc.calc.syntax_reference`), which the page's help panel shows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from pingcalc.api.exchange import Exchange
from pingcalc.api.problems import Problem
from pingcalc.api.routing import Route

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
REFERENCE_NAME = "calc-reference.json"
REFERENCE_TYPE = "application/json"

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


def _file(body: bytes, media_type: str) -> StaticFile:
    return StaticFile(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def load(name: str, media_type: str) -> StaticFile:
    """A file of `pingcalc/web/static`, read now."""
    return _file((files("pingcalc.web") / "static" / name).read_bytes(), media_type)


# Read at import: a missing file fails the start-up, not the first visitor.
INDEX = load(INDEX_NAME, INDEX_TYPE)
ASSETS: dict[str, StaticFile] = {name: load(name, kind) for name, kind in ASSET_TYPES.items()}

STATIC_PREFIX = "/static/"


async def serve(ex: Exchange, file: StaticFile, *, cache_control: str, csp: str = PAGE_CSP) -> None:
    """`file` under `csp`, or 304 when the client's `If-None-Match` holds its etag."""
    headers = [
        (b"content-security-policy", csp.encode()),
        (b"cache-control", cache_control.encode()),
        (b"etag", file.etag.encode()),
        # No other window may hold a reference to the page (tab-nabbing, XS-leaks).
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    for name, value in ex.scope["headers"]:
        if name == b"if-none-match" and file.etag.encode() in value:
            await ex.respond(304, b"", headers=headers)
            return
    await ex.respond(200, file.body, file.media_type.encode(), headers)


async def index(ex: Exchange) -> None:
    """The page with the ping and calculate forms."""
    await serve(ex, INDEX, cache_control=INDEX_CACHE_CONTROL)


def routes(calc_reference: dict[str, Any]) -> list[Route]:
    """The page and its files; `calc_reference` is `syntax_reference(bounds)` of this server."""
    reference = json.dumps(calc_reference, ensure_ascii=True, separators=(",", ":")).encode()
    assets = {**ASSETS, REFERENCE_NAME: _file(reference, REFERENCE_TYPE)}

    async def static_file(ex: Exchange) -> None:
        """One file of the fixed allow-list."""
        file = assets.get(ex.path[len(STATIC_PREFIX) :])
        if file is None:
            raise Problem(404, "there is no such static file", kind="not-found")
        await serve(ex, file, cache_control=ASSET_CACHE_CONTROL)

    return [
        Route("GET", "/", index),
        Route("GET", STATIC_PREFIX, static_file, prefix=True),
    ]
