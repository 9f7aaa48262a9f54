"""The page in real Chromium against a real server: it works, and server data stays text."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, Request, expect

from browser_support import WatchedPage
from tests_support import LiveServer

pytestmark = pytest.mark.browser

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SVG = '"><svg onload=alert(document.domain)>'


def open_page(watched: WatchedPage, server: LiveServer, token: str | None) -> Page:
    """Load the page and paste a token the way a user does."""
    page = watched.page
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="pingcalc")).to_be_visible()
    if token is not None:
        page.get_by_label("Bearer token").fill(token)
    return page


def calculate(page: Page, expression: str) -> None:
    page.get_by_label("Expression").fill(expression)
    page.get_by_label("Expression").press("Enter")


def ping(page: Page, target: str, count: int) -> None:
    page.get_by_label("Target address").fill(target)
    page.get_by_label("Echo requests").fill(str(count))
    page.get_by_role("button", name="Ping").click()


def test_calculation_shows_expression_and_result(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """A user with a calculate token gets `expression = result`, the value the API computes."""
    expression = "(1 + 2) * 3 - 4 / 2"
    with live_server.client("calc") as api:
        answer = api.post("/api/v1/calculate", json={"expression": expression})
    assert answer.status_code == 200, answer.text
    assert float(answer.json()["result"]) == 7.0
    page = open_page(watched_page, live_server, live_server.tokens.secrets["calc"])
    watched_page.screenshot("empty")
    calculate(page, expression)
    result = page.locator("#calc-result")
    expect(result).to_have_class(re.compile(r"\bok\b"))
    expect(result).to_have_text(f"{answer.json()['expression']} = {answer.json()['result']!r}")
    watched_page.screenshot("result")

    # Digits a JS number would round away are shown exactly as the server sent them.
    calculate(page, "2 ** 100")
    expect(result).to_have_text(f"2 ** 100 = {2**100}")
    watched_page.assert_clean()


@pytest.mark.ping
def test_ping_to_loopback_lists_replies_and_loss(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """A ping to 127.0.0.1 shows one line per reply, the loss summary and the backend."""
    page = open_page(watched_page, live_server, live_server.tokens.secrets["pinger"])
    ping(page, "127.0.0.1", 3)
    result = page.locator("#ping-result")
    expect(result).to_have_class(re.compile(r"\bok\b"), timeout=20_000)
    lines = result.inner_text().splitlines()
    assert lines[0] == "PING 127.0.0.1 (IPv4)"
    assert [line.split(" ")[0] for line in lines[1:4]] == ["seq=1", "seq=2", "seq=3"]
    assert all(re.fullmatch(r"seq=\d rtt=\d+(\.\d+)? ms", line) for line in lines[1:4])
    assert re.fullmatch(
        r"3 sent, 3 received, 0% loss; rtt min/avg/max/stddev = "
        r"(\d+(\.\d+)?/){3}\d+(\.\d+)? ms",
        lines[4],
    ), lines[4]
    assert re.fullmatch(r"backend: [a-z-]+", lines[5]), lines[5]
    assert len(lines) == 6
    watched_page.screenshot("result")
    watched_page.assert_clean()


@pytest.mark.ping
def test_wrong_token_and_missing_scope_show_the_problem_detail(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """401 and 403 answers are shown with the server's own detail, and nothing else runs."""
    with live_server.client() as api:
        wrong = {"Authorization": "Bearer not-a-real-token"}
        denied = api.post("/api/v1/calculate", json={"expression": "1 + 1"}, headers=wrong)
    assert denied.status_code == 401
    page = open_page(watched_page, live_server, "not-a-real-token")
    calculate(page, "1 + 1")
    result = page.locator("#calc-result")
    expect(result).to_have_class(re.compile(r"\berror\b"))
    expect(result).to_have_text(f"Error 401 {denied.json()['title']}: {denied.json()['detail']}")
    watched_page.screenshot("unauthorized")

    with live_server.client("calc") as api:
        forbidden = api.post("/api/v1/ping", json={"target": "127.0.0.1", "count": 1})
    assert forbidden.status_code == 403
    page.get_by_label("Bearer token").fill(live_server.tokens.secrets["calc"])
    ping(page, "127.0.0.1", 1)
    expect(page.locator("#ping-result")).to_have_text(
        f"Error 403 {forbidden.json()['title']}: {forbidden.json()['detail']}"
    )
    watched_page.screenshot("forbidden")
    watched_page.assert_clean(expected_failures=(401, 403))


def test_markup_in_an_expression_is_shown_as_text(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """An expression carrying <img onerror> is echoed as text: no element, no dialog (XSS)."""
    page = open_page(watched_page, live_server, live_server.tokens.secrets["calc"])
    result = page.locator("#calc-result")
    for state, expression in (("rejected", XSS_IMG), ("rejected-mid", f"6 * 7 + {XSS_IMG}")):
        with live_server.client("calc") as api:
            rejected = api.post("/api/v1/calculate", json={"expression": expression})
        assert rejected.status_code == 422
        position = rejected.json()["position"]
        calculate(page, expression)
        expect(result).to_have_class(re.compile(r"\berror\b"))
        expect(result).to_contain_text(rejected.json()["detail"])
        message, source = result.locator("pre").all_inner_texts()
        assert message.startswith(f"Error 422 {rejected.json()['title']}: ")
        assert f"column {position}" in message
        # The caret sits under the column the server named, below the literal expression.
        assert source == expression + "\n" + " " * (position - 1) + "^"
        assert result.locator("img").count() == 0
        assert page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
        page.wait_for_timeout(300)  # an onerror handler would have fired by now
        watched_page.screenshot(state)

    # The form still works after the rejected payloads.
    calculate(page, "6 * 7")
    expect(result).to_have_class(re.compile(r"\bok\b"))
    expect(result).to_have_text("6 * 7 = 42")
    watched_page.assert_clean(expected_failures=(422, 422))


def test_markup_in_a_ping_target_is_shown_as_text(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """A target carrying <svg onload> comes back in a 422 detail and stays text (XSS)."""
    with live_server.client("pinger") as api:
        rejected = api.post("/api/v1/ping", json={"target": XSS_SVG, "count": 1})
    assert rejected.status_code == 422
    assert XSS_SVG in rejected.json()["detail"], "the server echoes the markup back"
    page = open_page(watched_page, live_server, live_server.tokens.secrets["pinger"])
    ping(page, XSS_SVG, 1)
    result = page.locator("#ping-result")
    expect(result).to_have_class(re.compile(r"\berror\b"))
    expect(result).to_have_text(
        f"Error 422 {rejected.json()['title']}: {rejected.json()['detail']}"
    )
    assert result.locator("svg, img").count() == 0
    assert page.evaluate("document.querySelectorAll('svg, img').length") == 0
    page.wait_for_timeout(300)
    watched_page.screenshot("rejected")
    watched_page.assert_clean(expected_failures=(422,))


def test_csp_blocks_an_injected_inline_script(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """Even markup that reached the DOM could not run: the CSP blocks inline script (XSS)."""
    page = open_page(watched_page, live_server, None)
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__pwned = true";
            document.body.append(script);
        }"""
    )
    expect(page.locator("body")).to_be_visible()
    assert page.evaluate("window.__pwned === undefined")
    page.wait_for_function("window.__cspViolations.length > 0")
    violations = page.evaluate("window.__cspViolations")
    assert [v["directive"] for v in violations] == ["script-src-elem"]
    assert watched_page.csp_violations == violations
    assert watched_page.console_errors, "Chromium reports the blocked script on the console"


def test_keyboard_alone_can_calculate_with_a_visible_focus(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """Tab moves through labelled fields with a visible focus ring; Enter submits (WCAG 2.1.1)."""
    page = open_page(watched_page, live_server, None)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(live_server.tokens.secrets["calc"])
    page.keyboard.press("Tab")  # the Forget button
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "expression"
    outline = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert outline == ["solid", "3px"]
    page.keyboard.type("2 ** 10")
    watched_page.screenshot("focus")
    page.keyboard.press("Enter")
    result = page.locator("#calc-result")
    expect(result).to_have_class(re.compile(r"\bok\b"))
    expect(result).to_have_text("2 ** 10 = 1024")
    assert result.get_attribute("aria-live") == "polite"
    watched_page.screenshot("result")
    watched_page.assert_clean()


@pytest.mark.ping
def test_token_stays_in_session_storage_and_the_authorization_header(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """The token never appears in a URL, a cookie or localStorage, and is sent only to the API."""
    secret = live_server.tokens.secrets["pinger"]
    requests: list[Request] = []
    watched_page.page.on("request", lambda request: requests.append(request))
    page = open_page(watched_page, live_server, secret)
    ping(page, "127.0.0.1", 1)
    expect(page.locator("#ping-result")).to_have_class(re.compile(r"\bok\b"), timeout=20_000)

    api_calls = [r for r in requests if r.url.startswith(live_server.url + "/api/")]
    assert [r.method for r in api_calls] == ["POST"]
    assert api_calls[0].headers["authorization"] == f"Bearer {secret}"
    assert "cookie" not in api_calls[0].headers
    assert all(secret not in r.url for r in requests)
    others = [r for r in requests if r not in api_calls]
    assert others and all("authorization" not in r.headers for r in others)
    assert page.context.cookies() == []
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("sessionStorage.getItem('pingcalc.token')") == secret

    page.reload()
    expect(page.get_by_label("Bearer token")).to_have_value(secret)
    page.get_by_role("button", name="Forget").click()
    expect(page.get_by_label("Bearer token")).to_have_value("")
    assert page.evaluate("sessionStorage.length") == 0
    watched_page.assert_clean()
