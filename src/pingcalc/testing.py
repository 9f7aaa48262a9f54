"""Helpers for tests and benchmarks that drive a real server: a tokens file, a free port.

Like `starlette.testclient`, shipped with the package so the test suite and `bench/` share
one copy; nothing here runs in the server.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from pingcalc.auth import create_token


@dataclass
class Tokens:
    """Tokens written to a tokens file for one test or benchmark run: name -> secret."""

    path: Path
    secrets: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, *scopes: str) -> str:
        _, secret = create_token(self.path, name, scopes)
        self.secrets[name] = secret.reveal()
        return self.secrets[name]

    def header(self, name: str) -> dict[str, str]:
        """The `Authorization` header that presents `name`'s token."""
        return {"Authorization": f"Bearer {self.secrets[name]}"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
