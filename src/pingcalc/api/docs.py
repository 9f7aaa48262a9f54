"""`GET /docs`: the API reference a FastAPI user expects, served from the package itself.

FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN and start them with an
inline script, which the site's CSP forbids (and a third party's script on an admin page is
a supply-chain risk). The checked alternative, PyPI's swagger-ui-bundle 1.1.0 (Apache-2.0),
ships Swagger UI 4.15.5 from 2022 and 8.3 MB of files with source maps. Instead, a small page
of our own renders `/openapi.json` with a "Try it" form: three files in
`pingcalc/web/static`, same-origin only, under their own CSP that allows nothing but 'self'.
"""

from __future__ import annotations

from pingcalc.api.exchange import Exchange
from pingcalc.api.problems import Problem
from pingcalc.api.routing import Route
from pingcalc.api.web import ASSET_CACHE_CONTROL, StaticFile, load, serve

# Like the page's CSP: scripts, styles, images and fetches from this origin only; no inline
# code, no framing, no <base>, no form posts anywhere (the "Try it" form is sent by fetch).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
PAGE = load("docs.html", "text/html; charset=utf-8")
ASSET_PREFIX = "/docs/"
ASSETS: dict[str, StaticFile] = {
    "docs.js": load("docs.js", "text/javascript; charset=utf-8"),
    "docs.css": load("docs.css", "text/css; charset=utf-8"),
}


async def _serve(ex: Exchange, file: StaticFile) -> None:
    # The page and its files alike are revalidated on every use, so versions never mix.
    await serve(ex, file, cache_control=ASSET_CACHE_CONTROL, csp=DOCS_CSP)


async def page(ex: Exchange) -> None:
    """The reference page; it fetches /openapi.json."""
    await _serve(ex, PAGE)


async def asset(ex: Exchange) -> None:
    """The page's script and style sheet; any other name is a 404 (a fixed table, no paths)."""
    file = ASSETS.get(ex.path[len(ASSET_PREFIX) :])
    if file is None:
        raise Problem(404, "there is no such file", kind="not-found")
    await _serve(ex, file)


ROUTES = [
    Route("GET", "/docs", page),
    Route("GET", ASSET_PREFIX, asset, prefix=True),
]
