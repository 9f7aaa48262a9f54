"""The stack's Redis credentials (deploy/stack/make_secrets.py): hashes for Redis, the password
for pingcalc in a socket URI, and an upgrade path for stacks made when Redis was on TCP."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest

from tests_support import load_script

REPO = Path(__file__).resolve().parents[2]


def _make_secrets() -> ModuleType:
    return load_script(REPO / "deploy" / "stack" / "make_secrets.py")


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    # The script runs as root in a throw-away container; here the owners do not matter.
    monkeypatch.setattr(os, "chown", lambda *_args: None)
    app, redis = tmp_path / "pingcalc", tmp_path / "redis"
    app.mkdir()
    redis.mkdir()
    return app, redis


def test_new_credentials_reach_redis_as_hashes_and_pingcalc_as_a_socket_uri(
    dirs: tuple[Path, Path],
) -> None:
    """Redis gets only SHA-256 hashes; pingcalc gets its password in a `unix://` URI with 1 s
    timeouts (Redis has no TCP listener in the stack)."""
    app, redis = dirs
    _make_secrets().redis_credentials(app, redis)
    uri = urlsplit((app / "pingcalc_rate_limit_storage").read_text().strip())
    assert (uri.scheme, uri.username, uri.path) == ("unix", "pingcalc", "/run/redis/redis.sock")
    assert "socket_timeout=1" in uri.query and "socket_connect_timeout=1" in uri.query
    assert uri.password is not None and len(uri.password) == 64
    acl = (redis / "users.acl").read_text()
    assert uri.password not in acl
    assert f"#{hashlib.sha256(uri.password.encode()).hexdigest()}" in acl


def test_a_stack_made_with_redis_on_tcp_keeps_its_password_and_moves_to_the_socket(
    dirs: tuple[Path, Path],
) -> None:
    """`make stack-up` on an older stack: same password (the ACL still matches), new address;
    a second run changes nothing."""
    app, redis = dirs
    module = _make_secrets()
    module.redis_credentials(app, redis)
    storage = app / "pingcalc_rate_limit_storage"
    password = urlsplit(storage.read_text().strip()).password
    acl = (redis / "users.acl").read_text()
    storage.write_text(f"redis://pingcalc:{password}@redis:6379/0?socket_timeout=1\n")
    module.redis_credentials(app, redis)
    upgraded = storage.read_text()
    assert upgraded == module.storage_uri(password)
    assert (redis / "users.acl").read_text() == acl
    module.redis_credentials(app, redis)
    assert storage.read_text() == upgraded
