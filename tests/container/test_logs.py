"""`docker logs` holds one JSON event per line, access events included, and never a token."""

from __future__ import annotations

import json
import time

import pytest

from container_support import Stack

pytestmark = pytest.mark.container


def _events(stack: Stack) -> list[dict[str, object]]:
    lines = [line for line in stack.logs().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is JSON, or this raises


def test_docker_logs_are_json_access_events_without_tokens(stack: Stack) -> None:
    """T1552/AU-3: requests leave JSON access events; neither valid nor forged tokens appear."""
    forged = "pc_forgedtokenvalue0123456789abcdefABCDEF"
    body = {"target": "127.0.0.1", "count": 1}
    with stack.client("pinger") as client:
        assert client.post("/api/v1/ping", json=body).status_code == 200
    with stack.client() as anonymous:
        headers = {"Authorization": f"Bearer {forged}"}
        assert anonymous.post("/api/v1/ping", json=body, headers=headers).status_code == 401
    time.sleep(0.5)  # json-file writes asynchronously
    events = _events(stack)
    access = {
        e["status"]
        for e in events
        if e.get("event") == "access" and e.get("path") == "/api/v1/ping"
    }
    assert {200, 401} <= access
    text = stack.logs()
    for secret in [*stack.tokens.values(), forged]:
        assert secret not in text
    config = stack.inspect()["HostConfig"]["LogConfig"]
    assert config == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}


def test_env_file_settings_reach_the_service(stack: Stack) -> None:
    """CM-6: non-secret settings come from the env_file, as the start-up event records."""
    start = next(e for e in _events(stack) if e.get("event") == "server_start")
    assert start["rate_limit_per_token"] == stack.env_file_settings["PINGCALC_RATE_LIMIT_PER_TOKEN"]
    assert start["host"] == "0.0.0.0" and start["tokens_file"] == "/run/secrets/tokens.json"
