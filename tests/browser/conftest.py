"""Real Chromium (Debian's package) driven by Playwright, with every page watched for trouble.

Playwright's own browser download does not work here, so the browser is `/usr/bin/chromium`
(`.ci/run` installs it). pytest-playwright is not used: its session fixture deletes the whole
`test-results/` directory at the start of every pytest run, other suites' artefacts included.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "test-results" / "browser"

# Runs before any script of every document: records CSP violations in the page (for a look
# from the console) and reports them to the test through a binding, which survives reloads.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const record = {
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    sample: event.sample,
  };
  window.__cspViolations.push(record);
  if (typeof window.__reportCspViolation === "function") {
    window.__reportCspViolation(record);
  }
}, true);
"""


@dataclass
class WatchedPage:
    """A fresh page whose console errors, uncaught errors, dialogs and CSP violations are kept."""

    page: Page
    shots: Path
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    csp_violations: list[dict[str, Any]] = field(default_factory=list)

    def screenshot(self, state: str) -> Path:
        """Save the whole page as `<test output dir>/<state>.png`."""
        path = self.shots / f"{state}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        """No CSP violation, console error, uncaught exception or dialog happened."""
        in_page = self.page.evaluate("window.__cspViolations")
        assert self.csp_violations == [], self.csp_violations
        assert in_page == [], in_page
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.dialogs == [], self.dialogs


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the session (each test gets its own context)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def watched_page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[WatchedPage]:
    """A page in a fresh context (empty storage, no cookies) with its listeners attached."""
    shots = RESULTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    context = chromium.new_context(viewport={"width": 1100, "height": 760}, color_scheme="light")
    page = context.new_page()
    watched = WatchedPage(page, shots)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    page.on("dialog", on_dialog)
    page.expose_function("__reportCspViolation", watched.csp_violations.append)
    page.add_init_script(CSP_RECORDER)
    page.set_default_timeout(15_000)
    try:
        yield watched
    finally:
        context.close()
