"""`/docs` in real Chromium: the reference renders from /openapi.json under its 'self'-only
CSP with no violation, and "Try it" calls the API with the pasted token (TM-25)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from browser_support import WatchedPage
from tests_support import LiveServer

pytestmark = pytest.mark.browser


def test_docs_render_the_operations_and_try_it_calls_the_api(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """Every operation of the schema is listed; "Try it" on calculate answers 200 with 14."""
    with live_server.client() as api:
        schema = api.get("/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    page = watched_page.page
    page.goto(live_server.url + "/docs")
    expect(page.locator("body")).to_have_attribute("data-rendered", str(operations))
    assert page.locator("details.operation").count() == operations >= 4
    expect(page.get_by_role("heading", level=1)).to_contain_text("pingcalc")
    calc = page.locator('details[data-operation="POST /api/v1/calculate"]')
    calc.locator("summary").click()
    expect(calc.get_by_role("cell", name="expression *")).to_be_visible()
    page.get_by_label('Bearer token for "Try it"').fill(live_server.tokens.secrets["calc"])
    calc.get_by_label("body for POST /api/v1/calculate").fill('{"expression": "2*(3+4)"}')
    calc.get_by_role("button", name="Try it").click()
    expect(calc.locator(".result p")).to_have_attribute("data-status", "200")
    expect(calc.locator(".result pre")).to_have_text('{"expression":"2*(3+4)","result":14}')
    watched_page.screenshot("docs")
    watched_page.assert_clean()
