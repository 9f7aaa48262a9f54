"""What a browser test watches on a page: console errors, dialogs and CSP violations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

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


# Chromium itself logs every non-2xx fetch as a console error. Only these lines, for the
# API and the statuses a test expects, are allowed; any other console error fails the test.
HTTP_FAILURE = re.compile(
    r"Failed to load resource: the server responded with a status of (\d{3}) \(.*\)"
)


@dataclass(frozen=True)
class ConsoleError:
    """One console message of type error and the URL it is about."""

    text: str
    url: str


@dataclass
class WatchedPage:
    """A fresh page whose console errors, uncaught errors, dialogs and CSP violations are kept."""

    page: Page
    shots: Path
    console_errors: list[ConsoleError] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    csp_violations: list[dict[str, Any]] = field(default_factory=list)

    def screenshot(self, state: str) -> Path:
        """Save the whole page as `<test output dir>/<state>.png`."""
        path = self.shots / f"{state}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self, expected_failures: tuple[int, ...] = ()) -> None:
        """No CSP violation, dialog, uncaught exception or console error happened.

        `expected_failures` are API statuses the test provoked (say 401): Chromium's own
        "Failed to load resource" line for each must be there, and is the only error allowed.
        """
        in_page = self.page.evaluate("window.__cspViolations")
        assert self.csp_violations == [], self.csp_violations
        assert in_page == [], in_page
        assert self.page_errors == [], self.page_errors
        assert self.dialogs == [], self.dialogs
        failures: list[int] = []
        unexpected: list[ConsoleError] = []
        for error in self.console_errors:
            match = HTTP_FAILURE.fullmatch(error.text)
            if match and "/api/v1/" in error.url and int(match[1]) in expected_failures:
                failures.append(int(match[1]))
            else:
                unexpected.append(error)
        assert unexpected == [], unexpected
        assert sorted(failures) == sorted(expected_failures)
