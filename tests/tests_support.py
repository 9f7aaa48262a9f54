"""Helpers shared by test modules (importable; fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import httpx
import pytest

from pingcalc.testing import Tokens as Tokens
from pingcalc.testing import free_port as free_port

PINGCALC = str(Path(sys.executable).with_name("pingcalc"))
# The documented keys of a ping result for an IP target (the API's answer, `--json`): pinned.
PING_RESULT_KEYS = frozenset(
    {"target", "family", "sent", "received", "loss_percent", "rtt_ms", "replies", "backend"}
)


def process_env(**extra: str) -> dict[str, str]:
    """This process's environment without any PINGCALC_* setting, plus `extra`: what a
    child process (server, CLI) gets, so only what a test sets reaches it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINGCALC_")}
    env.update(extra)
    return env


def load_script(path: Path) -> ModuleType:
    """A standalone script (deploy/...: not a package module) imported to test its functions."""
    spec = spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_pingcalc(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`pingcalc ARGS` run to its exit with only the PINGCALC_* settings in `env` (see
    `process_env`), stdout and stderr captured as text; the caller judges the exit status
    unless `check`."""
    return subprocess.run(
        [PINGCALC, *args],
        cwd=cwd,
        env=process_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every PINGCALC_* variable so a test sees only what it sets."""
    for key in list(os.environ):
        if key.startswith("PINGCALC_"):
            monkeypatch.delenv(key)


@dataclass(frozen=True)
class AuditKeys:
    """An initial audit key from `pingcalc audit keygen`: the service's copy and the offline
    one the operator verifies with (same key, two files)."""

    service: Path
    verify: Path

    @classmethod
    def create(cls, directory: Path) -> AuditKeys:
        from pingcalc.audit import keygen

        directory.mkdir(parents=True, exist_ok=True)
        keys = cls(directory / "audit-service.key", directory / "audit-verify.key")
        keygen(keys.service, keys.verify)
        return keys

    def settings(self, audit_file: Path) -> dict[str, Path]:
        """The settings of an in-process app that seals `audit_file` with this key."""
        return {"audit_file": audit_file, "audit_key_file": self.service}

    def env(self, audit_file: Path) -> dict[str, str]:
        """The environment of a server that seals `audit_file` with this key."""
        return {
            "PINGCALC_AUDIT_FILE": str(audit_file),
            "PINGCALC_AUDIT_KEY_FILE": str(self.service),
        }


def file_records(path: Path) -> list[dict[str, Any]]:
    """Every record of one audit file, in order."""
    return [json.loads(line) for line in path.read_text().splitlines()]


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
    full_env = process_env()
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


def raw_http(server: LiveServer, request: bytes, *, read_until_close: bool = True) -> bytes:
    """Send bytes exactly as given and return what the server answers."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close and b"\r\n\r\n" in b"".join(chunks):
                break
    return b"".join(chunks)


def log_records(text: str) -> list[dict[str, Any]]:
    """Every JSON line of a server log (other lines are skipped)."""
    import json

    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def audit_records(text: str) -> list[dict[str, Any]]:
    """The audit records of a server log or captured stdout."""
    return [record for record in log_records(text) if record.get("log") == "audit"]


def rss_mib(pid: int) -> float:
    """The resident memory of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def server_address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


# Markers of internals that must never reach a client.
LEAKS = ("Traceback", 'File "', "site-packages", "pydantic.dev", "pingcalc/", "Exception")


class HTTPResponse(Protocol):
    """What the checks read of a response: httpx's (live server) or httpx2's (TestClient)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self, **kwargs: Any) -> Any: ...


def assert_problem(response: HTTPResponse, *statuses: int) -> dict[str, Any]:
    """`response` is a well-formed RFC 9457 problem with one of `statuses`, carrying its
    request id and no internals."""
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    for leak in LEAKS:
        assert leak not in response.text, leak
    return body
