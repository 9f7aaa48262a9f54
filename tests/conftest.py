"""Shared fixtures: settings and tokens on disk, an in-process app, and the real server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from pingcalc.app import create_app
from pingcalc.auth import create_token
from pingcalc.settings import Settings, load_settings

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parent.parent
PINGCALC = str(Path(sys.executable).with_name("pingcalc"))


@dataclass
class Tokens:
    """Tokens written to a tokens file for one test: name -> secret."""

    path: Path
    secrets: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, *scopes: str) -> str:
        _, secret = create_token(self.path, name, scopes)
        self.secrets[name] = secret.reveal()
        return self.secrets[name]

    def header(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[name]}"}


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    """A tokens file with `full` (every scope), `calc` (calculate) and `pinger` (ping)."""
    store = Tokens(tmp_path / "tokens.json")
    store.add("full", "ping", "calculate", "metrics")
    store.add("calc", "calculate")
    store.add("pinger", "ping")
    return store


@pytest.fixture
def make_settings(tokens: Tokens, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings isolated from the developer's environment and .env file."""
    for key in list(os.environ):
        if key.startswith("PINGCALC_"):
            monkeypatch.delenv(key)

    def build(**overrides: Any) -> Settings:
        overrides.setdefault("tokens_file", tokens.path)
        return load_settings(_env_file=None, **overrides)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app in process, with the default settings and the `tokens` fixture."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A real `pingcalc serve` process on a loopback port."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    tokens: Tokens

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens.secrets[token]}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_server(
    tokens: Tokens, log_path: Path, env: dict[str, str] | None = None, args: list[str] | None = None
) -> LiveServer:
    """Start `pingcalc serve` and wait until /healthz answers."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PINGCALC_")}
    full_env.update({"PINGCALC_TOKENS_FILE": str(tokens.path), "PINGCALC_PORT": str(port)})
    full_env.update(env or {})
    log = log_path.open("wb")
    process = subprocess.Popen(
        [PINGCALC, "serve", *(args or [])],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=log_path.parent,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return LiveServer(process, url, log_path, tokens)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server did not become healthy: {log_path.read_text()}")


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
