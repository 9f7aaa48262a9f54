"""Hostile requests against a real server: headers, bodies, JSON, content types.

Threats TM-08, TM-13, TM-15, TM-20, TM-22. Every POST operation of the server's own OpenAPI
schema is attacked, so a new endpoint is covered as soon as it has a sample body below.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests_support import (
    LiveServer,
    assert_problem,
    audit_records,
    log_records,
    raw_http,
    server_address,
)

# A legitimate body for every POST operation; a new operation without one fails the tests.
SAMPLE_BODIES: dict[str, dict[str, object]] = {
    "/api/v1/ping": {"target": "127.0.0.1", "count": 1},
    "/api/v1/calculate": {"expression": "2+3"},
}
NO_THROTTLE = {
    "PINGCALC_RATE_LIMIT_PER_IP": "100000/minute",
    "PINGCALC_RATE_LIMIT_PER_TOKEN": "100000/minute",
    "PINGCALC_AUTH_FAILURES_PER_IP": "100000/minute",
}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
MAX_BODY = 16 * 1024  # the default `max_body_bytes`


@pytest.fixture
def server(server_factory: Callable[..., LiveServer]) -> LiveServer:
    return server_factory(env=NO_THROTTLE)


@pytest.fixture
def post_paths(server: LiveServer) -> list[str]:
    schema = httpx.get(server.url + "/openapi.json", timeout=10).json()
    paths = sorted(path for path, ops in schema["paths"].items() if "post" in ops)
    assert paths, "the API has no POST operation to attack"
    missing = [path for path in paths if path not in SAMPLE_BODIES]
    assert missing == [], f"add a legitimate sample body for {missing}"
    return paths


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client("full") as authenticated:
        yield authenticated


@pytest.mark.ping
def test_oversized_body_is_refused_before_it_is_read(
    server: LiveServer, client: httpx.Client, post_paths: list[str]
) -> None:
    """A declared 10 MB body gets 413 without the server waiting for it; a streamed one is cut."""
    host = server.url.removeprefix("http://")
    token = server.tokens.secrets["full"]
    for path in post_paths:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"
        ).encode()
        # Only the headers are sent: an answer proves the body was never awaited.
        answer = raw_http(server, head, read_until_close=False)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]

        def stream() -> Iterator[bytes]:
            for _ in range(64):
                yield b" " * 4096  # 256 KiB of JSON whitespace, chunked, no Content-Length

        streamed = client.post(path, content=stream(), headers={"Content-Type": "application/json"})
        assert_problem(streamed, 413)
        assert client.post(path, json=SAMPLE_BODIES[path]).status_code == 200
    assert server.process.poll() is None


@pytest.mark.ping
def test_deeply_nested_json_does_not_crash_the_server(
    client: httpx.Client, post_paths: list[str]
) -> None:
    """JSON nested thousands deep under the body limit is a 4xx, never a 5xx or a dead server."""
    depth = (MAX_BODY - 200) // 2
    for path in post_paths:
        for body in ("[" * depth + "]" * depth, '{"a":' * (depth // 5) + "1" + "}" * (depth // 5)):
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert_problem(response, 400, 422)
        assert client.post(path, json=SAMPLE_BODIES[path]).status_code == 200


MALFORMED_JSON = (
    b"",
    b"{",
    b'{"target": "127.0.0.1",}',
    b"\xff\xfe{\x00}",
    b'{"a": "\\ud800"}',
    b'{"a": NaN}',
    b'{"a": 1e999999}',
    b'{"a": ' + b"9" * 5000 + b"}",
    b"null",
    b"[]",
    b'"string"',
    b"\xef\xbb\xbf{}",
    b'{"__proto__": {"admin": true}}',
)


def test_malformed_json_is_a_problem_without_internals(
    client: httpx.Client, post_paths: list[str]
) -> None:
    """Broken, odd or hostile JSON is a 4xx problem+json that reveals nothing of the code."""
    for path in post_paths:
        for body in MALFORMED_JSON:
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert_problem(response, 400, 422)


WRONG_CONTENT_TYPES = (
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "text/json",
    "application/javascript",
)


@pytest.mark.ping
def test_wrong_content_type_is_refused(client: httpx.Client, post_paths: list[str]) -> None:
    """A body that does not declare JSON is refused with 415, even if it parses as JSON."""
    for path in post_paths:
        body = json.dumps(SAMPLE_BODIES[path]).encode()
        for content_type in WRONG_CONTENT_TYPES:
            headers = {"Content-Type": content_type} if content_type else {}
            assert_problem(client.post(path, content=body, headers=headers), 415)
        ok = client.post(
            path, content=body, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert ok.status_code == 200


UNSAFE_REQUEST_IDS = (
    b"a" * 65,
    b"abc%0d%0aSet-Cookie:%20x=1",
    b"abc\x1b[31m",
    b"\xc3\xa9t\xc3\xa9",
    b"id\tSet-Cookie: x=1",
    b"a,b",
    b"../../etc/passwd",
)


def test_request_id_header_cannot_inject(server: LiveServer) -> None:
    """An unsafe X-Request-ID never reaches the response headers: one fresh id is sent instead."""
    host = server.url.removeprefix("http://").encode()
    for value in UNSAFE_REQUEST_IDS:
        request = (
            b"GET /healthz HTTP/1.1\r\nHost: "
            + host
            + b"\r\nX-Request-ID: "
            + value
            + b"\r\nConnection: close\r\n\r\n"
        )
        head = raw_http(server, request).split(b"\r\n\r\n", 1)[0].lower()
        if head.startswith(b"http/1.1 400"):
            continue  # the HTTP parser refused the request outright: nothing was echoed
        assert head.startswith(b"http/1.1 200"), (value, head[:100])
        ids = [line for line in head.split(b"\r\n") if line.startswith(b"x-request-id:")]
        assert len(ids) == 1
        rid = ids[0].split(b":", 1)[1].strip()
        assert len(rid) == 32 and rid.isalnum() and value.lower() not in head
        assert b"set-cookie" not in head
    # A plain id is recorded beside the server's own for correlation, never instead of it.
    plain = httpx.get(server.url + "/healthz", headers={"X-Request-ID": "req-42.a:b"}, timeout=10)
    issued = plain.headers["x-request-id"]
    assert plain.status_code == 200 and issued != "req-42.a:b" and len(issued) == 32
    assert f'"request_id":"{issued}"' in server.log_text()
    assert '"client_request_id":"req-42.a:b"' in server.log_text()


def test_security_headers_are_on_every_response(
    server: LiveServer, client: httpx.Client, post_paths: list[str]
) -> None:
    """200, 401, 403, 404, 405, 413, 415 and 422 responses of the real server all carry them."""
    path = post_paths[0]
    anonymous = httpx.Client(base_url=server.url, timeout=10)
    responses = [
        client.get("/healthz"),
        anonymous.get("/metrics"),
        server.client("calc").get("/metrics"),
        client.get("/no/such/thing"),
        client.delete(path),
        client.post(
            path, content=b" " * (MAX_BODY + 1), headers={"Content-Type": "application/json"}
        ),
        client.post(path, content=b"{}", headers={"Content-Type": "text/plain"}),
        client.post(path, json={"unexpected": True}),
    ]
    anonymous.close()
    assert sorted(r.status_code for r in responses) == [200, 401, 403, 404, 405, 413, 415, 422]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.status_code, name)
        assert "server" not in response.headers


def test_no_answer_redirects_to_the_clients_host(server: LiveServer) -> None:
    """A trailing slash or any other path never earns a redirect built from the client's
    Host header (open redirect, cache poisoning; OWASP A01)."""
    for path in (b"/static/app.js/", b"/api/v1/calculate/", b"/healthz/", b"//evil.example/"):
        answer = raw_http(
            server,
            b"GET " + path + b" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        )
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert not head.startswith(b"http/1.1 3"), head[:80]
        assert b"location:" not in head and b"evil.example" not in head
    assert httpx.get(server.url + "/static/app.js", timeout=10).status_code == 200


def test_a_client_leaving_mid_body_is_its_event_not_a_server_error(
    server: LiveServer,
) -> None:
    """A client that disconnects mid-body is logged as such (499, no traceback), never as a
    500 in the logs or the metrics (TM-15)."""
    secret = server.tokens.secrets["full"].encode()
    for _ in range(3):
        with socket.create_connection(server_address(server), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + secret
                + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"expr'
            )
            time.sleep(0.2)
    time.sleep(0.5)
    records = log_records(server.log_text())
    access = [r for r in records if r.get("event") == "access" and r.get("path")]
    assert [r["status"] for r in access if r["method"] == "POST"] == [499] * 3
    assert all(r["reason"] == "client_disconnected" for r in access if r["status"] == 499)
    assert "Traceback" not in server.log_text()
    assert not [r for r in records if r.get("event") == "unhandled_exception"]
    with server.client("full") as client:
        metrics = client.get("/metrics").text
        assert 'status="500"' not in metrics
        assert client.post("/api/v1/calculate", json={"expression": "1+1"}).status_code == 200


@pytest.mark.parametrize(
    "coding",
    [b"gzip, chunked", b"chunked, gzip", b"identity", b"x", b"gzip\r\nTransfer-Encoding: chunked"],
)
def test_transfer_codings_other_than_chunked_are_refused(server: LiveServer, coding: bytes) -> None:
    """Only `Transfer-Encoding: chunked` frames a body: anything else is refused, never
    guessed at (request smuggling, compressed bodies past the size limit; TM-20)."""
    secret = server.tokens.secrets["full"].encode()
    body = b'{"expression": "6*7"}'
    answer = raw_http(
        server,
        b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + secret
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: "
        + coding
        + b"\r\nConnection: close\r\n\r\n15\r\n"
        + body
        + b"\r\n0\r\n\r\n",
    )
    assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 501 ")), answer[:80]
    assert b'"result"' not in answer
    chunked = raw_http(
        server,
        b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + secret
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
        + b"\r\nConnection: close\r\n\r\n15\r\n"
        + body
        + b"\r\n0\r\n\r\n",
    )
    assert chunked.startswith(b"HTTP/1.1 200 ") and b'"result":42' in chunked


def test_a_client_request_id_never_collides_in_the_audit_trail(server: LiveServer) -> None:
    """Two requests sending the same X-Request-ID get distinct ids in their audit records;
    the client's is kept beside the server's (repudiation, TM-11)."""
    with server.client("full") as client:
        for _ in range(2):
            response = client.post(
                "/api/v1/calculate",
                json={"expression": "1+2"},
                headers={"X-Request-ID": "same-id"},
            )
            assert response.status_code == 200
    calcs = [r for r in audit_records(server.log_text()) if r["event"] == "calculation"]
    assert len({r["request_id"] for r in calcs}) == 2
    assert [r["client_request_id"] for r in calcs] == ["same-id", "same-id"]
