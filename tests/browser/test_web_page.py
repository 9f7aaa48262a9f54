"""The page in real Chromium against a real server: it works, and server data stays text."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, Request, expect

from browser_support import WatchedPage
from dns_server import DnsServer
from pingcalc.calc import Bounds, syntax_reference
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
    page.get_by_label("Target address or host name").fill(target)
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
    assert page.evaluate("sessionStorage.getItem('pingcalc.token')") is None
    # What stays is the result history, which never held the token.
    assert page.evaluate("Object.keys(sessionStorage)") == ["pingcalc.history"]
    assert secret not in page.evaluate("sessionStorage.getItem('pingcalc.history')")
    watched_page.assert_clean()


# --- live replies, host names, history, syntax help -----------------------------------------


def test_ping_replies_appear_one_by_one_as_they_arrive(
    watched_page: WatchedPage, server_factory: Callable[..., LiveServer]
) -> None:
    """The page streams the ping (NDJSON): each reply line shows while later echoes are due."""
    server = server_factory(env={"PINGCALC_PING_INTERVAL_SECONDS": "0.5"})
    page = open_page(watched_page, server, server.tokens.secrets["pinger"])
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    # Note the moment each reply line first shows in the result region.
    page.evaluate(
        """() => {
            window.__seen = {};
            const region = document.getElementById("ping-result");
            new MutationObserver(() => {
                for (const seq of [1, 2, 3]) {
                    const key = `seq=${seq} rtt=`;
                    if (!(key in window.__seen) && region.textContent.includes(key)) {
                        window.__seen[key] = performance.now();
                    }
                }
            }).observe(region, { childList: true, subtree: true, characterData: true });
        }"""
    )
    ping(page, "127.0.0.1", 3)
    result = page.locator("#ping-result")
    expect(result).to_contain_text("seq=1 rtt=", timeout=10_000)
    # The first reply is on screen while the ping is still running.
    assert "seq=3" not in result.inner_text()
    expect(result).to_have_class(re.compile(r"\bpending\b"))
    watched_page.screenshot("first-reply")
    expect(result).to_have_class(re.compile(r"\bok\b"), timeout=20_000)
    seen = page.evaluate("window.__seen")
    times = [seen[f"seq={seq} rtt="] for seq in (1, 2, 3)]
    assert times[1] - times[0] > 350 and times[2] - times[1] > 350, times  # ms, 0.5 s apart
    lines = result.inner_text().splitlines()
    assert lines[0] == "PING 127.0.0.1 (IPv4)" and len(lines) == 6
    [call] = [r for r in requests if r.url.endswith("/api/v1/ping")]
    assert call.headers["accept"].startswith("application/x-ndjson")
    watched_page.screenshot("result")
    watched_page.assert_clean()


def test_ping_accepts_a_host_name_and_a_family(
    watched_page: WatchedPage,
    server_factory: Callable[..., LiveServer],
    dns_server: DnsServer,
) -> None:
    """A name is resolved by the server (here: the tests' DNS server) and shown with its address."""
    dns_server.add_loopbacks("box.test")
    server = server_factory(env={"PINGCALC_PING_RESOLVER": dns_server.url})
    page = open_page(watched_page, server, server.tokens.secrets["pinger"])
    page.get_by_label("Address family").select_option("4")
    ping(page, "box.test", 1)
    result = page.locator("#ping-result")
    expect(result).to_have_class(re.compile(r"\bok\b"), timeout=20_000)
    assert result.inner_text().splitlines()[0] == "PING box.test (127.0.0.1, IPv4)"
    assert dns_server.asked("box.test") == [("box.test", "A")]  # the family reached the server
    ping(page, "inside.test", 1)  # unknown to the DNS server
    expect(result).to_have_class(re.compile(r"\berror\b"))
    expect(result).to_have_text(re.compile(r"^Error 404 Name not found: inside\.test "))
    watched_page.assert_clean(expected_failures=(404,))


def history(page: Page) -> list[str]:
    return [text.split(" ", 1)[1] for text in page.locator("#history li").all_inner_texts()]


def test_history_keeps_one_entry_per_result_and_never_the_token(
    watched_page: WatchedPage, live_server: LiveServer
) -> None:
    """Each result adds an entry (newest first) that survives a reload; the token, even typed
    into a field, is never kept in it (T1528)."""
    secret = live_server.tokens.secrets["full"]
    page = open_page(watched_page, live_server, secret)
    calculate(page, "6 * 7")
    expect(page.locator("#calc-result")).to_have_text("6 * 7 = 42")
    calculate(page, secret)  # pasted into the wrong field: the error echoes it back
    expect(page.locator("#calc-result")).to_have_class(re.compile(r"\berror\b"))
    ping(page, "127.0.0.1", 1)
    expect(page.locator("#ping-result")).to_have_class(re.compile(r"\bok\b"), timeout=20_000)
    entries = history(page)
    assert len(entries) == 3
    assert entries[0].startswith("ping: 127.0.0.1: 1 sent, 1 received, 0% loss")
    assert entries[1].startswith("calculate: [token]: Error 422 ")
    assert entries[2] == "calculate: 6 * 7 = 42"
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('pingcalc.history'))")
    assert [entry["kind"] for entry in stored] == ["ping", "calculate", "calculate"]
    assert [entry["ok"] for entry in stored] == [True, False, True]
    everything = page.evaluate(
        "Object.keys(sessionStorage).filter(k => k !== 'pingcalc.token')"
        ".map(k => sessionStorage.getItem(k)).join(' ')"
    )
    assert secret not in everything and secret not in page.locator("#history").inner_text()
    watched_page.screenshot("history")

    page.reload()
    assert len(history(page)) == 3  # per session: kept across a reload of the tab
    page.get_by_role("button", name="Clear history").click()
    assert history(page) == []
    assert page.evaluate("sessionStorage.getItem('pingcalc.history')") is None
    watched_page.assert_clean(expected_failures=(422,))


def test_help_panel_shows_this_servers_syntax_reference(
    watched_page: WatchedPage, server_factory: Callable[..., LiveServer]
) -> None:
    """The help lists every function with its example and the server's own bounds, as text."""
    server = server_factory(env={"PINGCALC_CALC_MAX_LENGTH": "500"})
    reference = syntax_reference(Bounds(max_length=500))
    page = open_page(watched_page, server, None)
    help_panel = page.locator("#calc-help")
    expect(help_panel.locator("table")).to_have_count(4)  # loaded (still collapsed)
    page.get_by_text("Syntax help").click()
    rows = help_panel.locator("table").nth(1).locator("tbody tr")
    expect(rows).to_have_count(len(reference["functions"]))
    first = reference["functions"][0]
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[0] == first["name"] and cells[-1] == f"{first['example']} = {first['result']!r}"
    bounds = help_panel.locator("table").nth(3).locator("tbody tr").first.locator("td")
    assert bounds.all_inner_texts()[:2] == ["max_length", "500"]
    watched_page.screenshot("help")
    watched_page.assert_clean()
