"""Shared fixtures: settings and tokens on disk, an in-process app, and the real server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dns_server import DnsServer, running_dns_server
from pingcalc.api.edge import Edge
from pingcalc.app import create_app
from pingcalc.settings import Settings, load_settings
from tests_support import AuditKeys, LiveServer, Tokens, clean_env, start_server

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parent.parent
# threats.yaml bookkeeping: prints `threats verified: N/M`, fails unverified threats in CI.
# preflight: lists missing prerequisites at the start; tests needing one skip (fail in CI).
pytest_plugins = ["threat_plugin", "preflight"]


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    """A tokens file with `full` (every scope), `calc` (calculate) and `pinger` (ping)."""
    store = Tokens(tmp_path / "tokens.json")
    store.add("full", "ping", "calculate", "metrics")
    store.add("calc", "calculate")
    store.add("pinger", "ping")
    return store


@pytest.fixture
def audit_keys(tmp_path: Path) -> AuditKeys:
    """A fresh initial audit key (service copy and offline copy) in the test's directory."""
    return AuditKeys.create(tmp_path / "keys")


@pytest.fixture
def make_settings(tokens: Tokens, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings isolated from the developer's environment and .env file."""
    clean_env(monkeypatch)

    def build(**overrides: Any) -> Settings:
        overrides.setdefault("tokens_file", tokens.path)
        return load_settings(_env_file=None, **overrides)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """A DNS server on 127.0.0.1 whose answers the test sets; stopped afterwards."""
    with running_dns_server() as server:
        yield server


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app in process, with the default settings and the `tokens` fixture."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def open_client() -> Iterator[Callable[[Edge], TestClient]]:
    """Open an in-process client on an app (its lifespan runs); all are closed afterwards."""
    opened: list[TestClient] = []

    def open_(app: Edge) -> TestClient:
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield open_
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def live_server(tokens: Tokens, tmp_path: Path) -> Iterator[LiveServer]:
    """The real server with default settings, stopped after the test."""
    server = start_server(tokens, tmp_path / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_factory(tokens: Tokens, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers with extra environment; all are stopped after the test."""
    started: list[LiveServer] = []

    def start(env: dict[str, str] | None = None, args: list[str] | None = None) -> LiveServer:
        server = start_server(tokens, tmp_path / f"server{len(started)}.log", env, args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """In CI a skipped test is a missing prerequisite: report it loudly (the hook below fails)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if IN_CI and skipped:
        terminalreporter.section("skips are failures in CI", red=True)
        for report in skipped:
            terminalreporter.line(f"SKIPPED in CI: {report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = 1


ETC_HOSTS = Path("/etc/hosts")
ETC_HOSTS_NAME = "pingcalc-hosts-file-test.test"


@pytest.fixture
def etc_hosts_name() -> Iterator[str]:
    """A name that /etc/hosts lists for 127.0.0.1 during the test; the file is restored after,
    also when the test fails."""
    from preflight import require  # a plugin of this suite: import it only once it is loaded

    require("root")
    original = ETC_HOSTS.read_bytes()
    try:
        ETC_HOSTS.write_bytes(original.rstrip(b"\n") + f"\n127.0.0.1 {ETC_HOSTS_NAME}\n".encode())
        yield ETC_HOSTS_NAME
    finally:
        ETC_HOSTS.write_bytes(original)
