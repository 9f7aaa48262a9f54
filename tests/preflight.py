"""What the suite needs from the machine, checked once at the start of every test session.

The header of a run lists every missing prerequisite at once with the command that installs
or enables it. A test that needs one (by marker: `container`, `browser`, `redis`,
`prometheus`, `ping`; or by calling `require(name)` in a fixture) is skipped with that one
reason on a developer's machine, and fails in CI (`CI=true`), where `.ci/run` installs them
all. Lookups use `PATH` (so a test can hide a tool), except `ping`, which the service itself
only ever looks for in fixed system directories.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
OPEN_RANGE_FIX = 'sysctl -w net.ipv4.ping_group_range="0 2147483647"'


@dataclass(frozen=True)
class Prerequisite:
    """One thing the machine must provide: how to tell it is there, and how to get it."""

    name: str
    what: str
    fix: str
    probe: Callable[[], str | None]  # None when present, else what is wrong

    def reason(self, problem: str) -> str:
        return f"{self.what}: {problem} (fix: {self.fix})"


def _docker() -> str | None:
    client = shutil.which("docker")
    if client is None:
        return "no docker client in PATH"
    try:
        info = subprocess.run(
            [client, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the engine did not answer within 15 s"
    if info.returncode != 0:
        return f"the engine does not answer ({info.stderr.strip()[:120]})"
    return None


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _tool(name: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        return None if shutil.which(name) else f"`{name}` is not in PATH"

    return probe


def _ping_binary() -> str | None:
    from pingcalc.ping.selection import PING_SEARCH_PATH, find_ping

    return None if find_ping() else f"no ping binary in {PING_SEARCH_PATH}"


def _datagram() -> str | None:
    from pingcalc.ping.selection import probe_datagram

    problem = probe_datagram()
    if problem is None:
        return None
    try:
        current = PING_GROUP_RANGE.read_text().split()
    except OSError:
        return problem
    return f"net.ipv4.ping_group_range is {' '.join(current)}, gid {os.getgid()} is outside it"


def _any_ping() -> str | None:
    binary, datagram = _ping_binary(), _datagram()
    if binary is None or datagram is None:
        return None
    return f"{binary}, and {datagram}"


PREREQUISITES: dict[str, Prerequisite] = {
    p.name: p
    for p in (
        Prerequisite(
            "docker",
            "Docker engine",
            "apt-get install -y docker.io && setsid -f dockerd (or: bash .ci/run)",
            _docker,
        ),
        Prerequisite(
            "redis-server", "redis-server", "apt-get install -y redis-server", _tool("redis-server")
        ),
        Prerequisite(
            "chromium",
            "Chromium",
            "apt-get install -y chromium",
            lambda: None if chromium_path() else "no chromium in PATH",
        ),
        Prerequisite("promtool", "promtool", "apt-get install -y prometheus", _tool("promtool")),
        Prerequisite(
            "ping",
            "a ping backend",
            f"apt-get install -y iputils-ping, or {OPEN_RANGE_FIX}",
            _any_ping,
        ),
        Prerequisite(
            "ping-binary", "the ping binary", "apt-get install -y iputils-ping", _ping_binary
        ),
        Prerequisite(
            "root",
            "root",
            "run the suite as root (CI does): some tests change sysctls, mounts and owners",
            lambda: None if os.geteuid() == 0 else f"running as uid {os.geteuid()}",
        ),
    )
}

# Markers that declare a prerequisite (pyproject.toml lists them).
MARKERS = {
    "container": "docker",
    "browser": "chromium",
    "redis": "redis-server",
    "prometheus": "promtool",
    "ping": "ping",
    "ping_binary": "ping-binary",
}


@functools.cache
def missing(name: str) -> str | None:
    """Why prerequisite `name` is missing (the full reason with its fix), or None."""
    prerequisite = PREREQUISITES[name]
    problem = prerequisite.probe()
    return None if problem is None else prerequisite.reason(problem)


def require(name: str, *, at_item: bool = False) -> None:
    """Skip the calling test (fail in CI) when prerequisite `name` is missing.

    `at_item` reports the skip at the test's own location (as `skipif` marks do), not here.
    """
    reason = missing(name)
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"missing prerequisite in CI: {reason}", pytrace=False)
    raise pytest.skip.Exception(f"missing prerequisite: {reason}", _use_item_location=at_item)


def summary() -> list[str]:
    """The report: every missing prerequisite with its fix, or that all are present."""
    reasons = [r for r in (missing(name) for name in PREREQUISITES) if r is not None]
    if not reasons:
        return ["prerequisites: all present"]
    consequence = "tests that need them FAIL (CI=true)" if IN_CI else "tests that need them skip"
    return [f"prerequisites missing ({len(reasons)}); {consequence}:"] + [
        f"  - {reason}" for reason in reasons
    ]


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Print the report at the very start (also with -q), before any test runs."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    for line in summary():
        reporter.write_line(line)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers():
        if marker.name in MARKERS:
            require(MARKERS[marker.name], at_item=True)


def pytest_configure(config: Any) -> None:
    # Registered here too, so a test file run from elsewhere (the preflight's own tests) knows them.
    for marker, name in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: needs {PREREQUISITES[name].what}")
