"""The real `pingcalc serve` process: fail-closed start, live token changes, JSON logs."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from pingcalc.auth import revoke_token
from tests_support import PINGCALC, LiveServer, Tokens, free_port


def _serve(tmp_path: Path, tokens_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PINGCALC, "serve", "--port", str(free_port())],
        env={"PINGCALC_TOKENS_FILE": str(tokens_file), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    """Fail closed: no tokens file means no server, and the message says how to fix it."""
    result = _serve(tmp_path, tmp_path / "missing.json")
    assert result.returncode == 2
    assert "refusing to start: no API tokens" in result.stderr
    assert "pingcalc token create" in result.stderr


def test_serve_refuses_to_start_with_empty_or_broken_tokens_file(tmp_path: Path) -> None:
    """An empty or corrupt tokens file also stops start-up with a clear line."""
    empty = tmp_path / "empty.json"
    empty.write_text('{"version": 1, "tokens": []}')
    assert _serve(tmp_path, empty).returncode == 2
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    result = _serve(tmp_path, broken)
    assert (
        result.returncode == 2 and "malformed" in result.stderr and "Traceback" not in result.stderr
    )


def test_real_server_sends_no_server_banner(live_server: LiveServer) -> None:
    """uvicorn's Server header is off: no version banner for attackers (OWASP A05)."""
    response = httpx.get(live_server.url + "/healthz")
    assert response.status_code == 200 and "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_real_server_binds_only_where_told(live_server: LiveServer) -> None:
    """The default bind is loopback: the server answers on 127.0.0.1 only."""
    port = int(live_server.url.rsplit(":", 1)[1])
    with open("/proc/net/tcp") as handle:
        listening = [line.split() for line in handle.readlines()[1:] if line.split()[3] == "0A"]
    ours = [row for row in listening if int(row[1].split(":")[1], 16) == port]
    assert ours and all(row[1].split(":")[0] == "0100007F" for row in ours)


def test_token_revoked_while_running_stops_working(live_server: LiveServer, tokens: Tokens) -> None:
    """Revocation takes effect in a running server without a restart."""
    with live_server.client("full") as client:
        assert client.get("/readyz").status_code == 200
        path = "/api/v1/calculate"
        assert client.post(path, json={"expression": "1+1"}).status_code == 200
        revoke_token(tokens.path, "full")
        response = client.post(path, json={"expression": "1+1"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_token_added_while_running_works_and_sighup_reloads(
    live_server: LiveServer, tokens: Tokens
) -> None:
    """A token created after start works at once; SIGHUP re-reads the file and keeps serving."""
    secret = tokens.add("late", "calculate")
    headers = {"Authorization": f"Bearer {secret}"}
    response = httpx.post(
        live_server.url + "/api/v1/calculate", json={"expression": "2*3"}, headers=headers
    )
    assert response.status_code == 200
    live_server.process.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert live_server.process.poll() is None
    response = httpx.post(
        live_server.url + "/api/v1/calculate", json={"expression": "2*3"}, headers=headers
    )
    assert response.status_code == 200


def test_logs_are_json_access_events_without_tokens(
    live_server: LiveServer, tokens: Tokens
) -> None:
    """One JSON access event per request; no secret or Authorization value ever logged (IA-5)."""
    wrong = "pc_" + "x" * 43
    with live_server.client("full") as client:
        client.post(
            "/api/v1/calculate", json={"expression": "6*7"}, headers={"X-Request-ID": "r-1"}
        )
        client.get("/readyz", headers={"Authorization": f"Bearer {wrong}"})
        client.post("/api/v1/calculate", json={"expression": "1"}, headers={"Authorization": wrong})
    live_server.stop()
    text = live_server.log_text()
    for secret in [*tokens.secrets.values(), wrong]:
        assert secret not in text
    assert "Bearer" not in text and "authorization" not in text.lower()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [e for e in events if e.get("event") == "access"]
    first = next(e for e in access if e.get("client_request_id") == "r-1")
    assert first["request_id"] != "r-1" and len(first["request_id"]) == 32
    assert first["method"] == "POST" and first["path"] == "/api/v1/calculate"
    assert first["status"] == 200 and first["token"] == "full" and first["client_ip"] == "127.0.0.1"
    assert isinstance(first["duration_ms"], float) and first["ts"].endswith("Z")


def test_sigterm_exits_zero(server_factory: Callable[..., LiveServer]) -> None:
    """SIGTERM stops the server cleanly with exit code 0."""
    server = server_factory()
    assert server.stop(signal.SIGTERM) == 0
