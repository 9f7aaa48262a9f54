"""Real Chromium (Debian's package) driven by Playwright, with every page watched for trouble.

Playwright's own browser download does not work here, so the browser is Debian's `chromium`
(`.ci/run` installs it). pytest-playwright is not used: its session fixture deletes the whole
`test-results/` directory at the start of every pytest run, other suites' artefacts included.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, sync_playwright

from browser_support import CSP_RECORDER, ConsoleError, WatchedPage
from preflight import chromium_path, require

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


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium per module (each test gets its own context).

    Not session-scoped: Playwright's sync API keeps an event loop running in the main thread
    while it is open, and every later test calling `asyncio.run()` would then fail.
    """
    require("chromium")  # skips here, fails in CI (.ci/run installs it)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
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
            watched.console_errors.append(ConsoleError(message.text, message.location["url"]))

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    page.on("dialog", on_dialog)

    def on_csp_violation(record: dict[str, Any]) -> None:
        watched.csp_violations.append(record)

    page.expose_function("__reportCspViolation", on_csp_violation)
    page.add_init_script(CSP_RECORDER)
    page.set_default_timeout(15_000)
    try:
        yield watched
    finally:
        context.close()
