"""Log injection and secrets in logs, against a real server (threats TM-02, TM-11, TM-12).

Attacker-controlled text reaches the logs through the request path, the ping target (audited
when refused) and headers. Every line the server writes must stay one JSON object, with no
raw CR, LF or ESC, and no token may appear in it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from tests_support import LiveServer, Tokens, raw_http

PING = "/api/v1/ping"
FORGED = '{"log":"audit","event":"token_created","token":"mallory","outcome":"success"}'
ANSI = "\x1b[2J\x1b[31mOK\x1b]0;owned\x07"


def _lines(server: LiveServer) -> list[str]:
    server.stop()  # flush and close: every line the server will ever write is there
    return server.log_path.read_bytes().decode("utf-8").splitlines()


def test_crlf_in_inputs_does_not_forge_log_lines(live_server: LiveServer, tokens: Tokens) -> None:
    """CR/LF in the path, the ping target and headers stays inside one JSON field."""
    with live_server.client("full") as client:
        for payload in (f"\n{FORGED}", f"\r\n{FORGED}\r\n", f"\u2028{FORGED}\u0085"):
            response = client.post(PING, json={"target": f"127.0.0.1{payload}", "count": 1})
            assert response.status_code == 422
        # A path with encoded CR/LF: the access event logs the decoded path.
        assert client.get("/x%0d%0a" + FORGED.replace('"', "%22")).status_code == 404
        # The legitimate request still works and is logged.
        assert client.get("/metrics").status_code == 200
    raw = raw_http(
        live_server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\rb\r\nConnection: close\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 ")
    lines = _lines(live_server)
    events = [json.loads(line) for line in lines]  # every line parses: no torn or extra lines
    assert not [e for e in events if e.get("token") == "mallory"]
    created = [e for e in events if e.get("event") == "token_created"]
    assert created == []
    rejected = [e for e in events if e.get("event") == "ping_rejected"]
    # Recorded escaped: the decoded value holds the escape text, never the raw character.
    assert len(rejected) == 3 and all(
        ("\\n" in e["target"] or "\\u2028" in e["target"])
        and "\n" not in e["target"]
        and "\u2028" not in e["target"]
        for e in rejected
    )
    assert any(e.get("event") == "access" and e.get("path") == "/metrics" for e in events)


def test_ansi_escapes_never_reach_the_log_raw(live_server: LiveServer, tokens: Tokens) -> None:
    """Terminal escape sequences in inputs are written escaped (\\u001b), never as raw bytes."""
    with live_server.client("full") as client:
        response = client.post(PING, json={"target": ANSI, "count": 1})
        assert response.status_code == 422
        assert "\x1b" not in response.text  # nor echoed raw to the client
        assert client.get("/%1b%5b2J%1b%5d0;owned%07").status_code == 404
    _lines(live_server)
    data = live_server.log_path.read_bytes()
    assert b"\x1b" not in data and b"\x07" not in data
    assert max(data) < 0x80  # ensure_ascii: no raw non-ASCII either
    assert b"\\u001b[2J" in data  # the input was logged, escaped


def test_tokens_never_reach_the_logs(live_server: LiveServer, tokens: Tokens) -> None:
    """Valid and wrong tokens, and a token pasted into a field or a header, are never logged."""
    secret = tokens.secrets["full"]
    wrong = "pc_" + "Zz9" * 15
    with live_server.client("full") as client:
        assert client.get("/metrics").status_code == 200
        # A user pastes the token into the target field: the refusal is audited, redacted.
        assert client.post(PING, json={"target": secret, "count": 1}).status_code == 422
        assert client.post(PING, json={"target": f"Bearer {secret}"}).status_code == 422
        assert client.get("/metrics", headers={"X-Request-ID": secret}).status_code == 200
        assert client.get(f"/{secret}").status_code == 404
    with httpx.Client(base_url=live_server.url, timeout=10) as anonymous:
        for header in (f"Bearer {wrong}", wrong, f"Basic {secret}"):
            assert anonymous.get("/metrics", headers={"Authorization": header}).status_code == 401
    text = "\n".join(_lines(live_server))
    for value in (*tokens.secrets.values(), wrong, secret[3:20]):
        assert value not in text
    assert "[REDACTED]" in text  # the fields were logged, with the secret replaced


def test_failed_authentication_is_audited(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """A refused token leaves an audit record with reason, address and the response's request id."""
    server = server_factory()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        missing = client.get("/metrics")
        invalid = client.get("/metrics", headers={"Authorization": "Bearer pc_nope"})
        ok = client.get("/metrics", headers=tokens.header("calc"))  # valid token, wrong scope
    assert (missing.status_code, invalid.status_code, ok.status_code) == (401, 401, 403)
    events = [json.loads(line) for line in _lines(server)]
    audit = {e["request_id"]: e for e in events if e.get("log") == "audit" and e["request_id"]}
    for response, reason in (
        (missing, "missing_token"),
        (invalid, "invalid_token"),
        (ok, "missing_scope"),
    ):
        record = audit[response.headers["x-request-id"]]
        assert record["reason"] == reason and record["outcome"] == "denied"
        assert record["client_ip"] == "127.0.0.1" and record["ts"]
    assert audit[ok.headers["x-request-id"]]["token"] == "calc"
