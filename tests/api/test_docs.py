"""`GET /docs`: the API reference served by the package, under a CSP that allows only 'self'
(TM-25: no third-party or inline script on any page; the rest of the site keeps its CSP)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def test_docs_page_is_served_from_the_package_without_a_cdn(client: TestClient) -> None:
    """The page and its two files come from this server; nothing names another origin."""
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert "'unsafe-inline'" not in DOCS_CSP and "http" not in DOCS_CSP
    html = page.text
    assert set(re.findall(r'(?:src|href)="([^"]+)"', html)) == {
        "/openapi.json",
        "/static/favicon.svg",
        "/docs/docs.css",
        "/docs/docs.js",
    }
    assert "<script>" not in html and " on" not in re.sub(r"<p[^>]*>.*?</p>", "", html, flags=re.S)
    for name, kind in (("docs.js", "text/javascript"), ("docs.css", "text/css")):
        asset = client.get(f"/docs/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert asset.headers["content-security-policy"] == DOCS_CSP
        assert not re.search(r"https?://", asset.text)
        assert ".innerHTML" not in asset.text and "eval(" not in asset.text


def test_docs_page_renders_the_schema_the_server_serves(client: TestClient) -> None:
    """The script reads /openapi.json, which lists the two operations; /docs is not in it."""
    schema = client.get("/openapi.json").json()
    assert {"/api/v1/calculate", "/api/v1/ping"} <= set(schema["paths"])
    assert "/docs" not in schema["paths"]
    assert 'fetch("/openapi.json"' in client.get("/docs/docs.js").text


def test_unknown_docs_file_is_a_404_problem_and_the_rest_keeps_its_csp(client: TestClient) -> None:
    """Only the fixed files are served (no path traversal); API routes keep `default-src 'none'`."""
    for path in ("/docs/..%2f..%2fsettings.py", "/docs/app.js", "/docs/docs.map"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
    health = client.get("/healthz")
    assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
