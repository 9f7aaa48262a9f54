"""Hostile requests against a real server: headers, bodies, JSON, content types.

Threats TM-08, TM-13, TM-15, TM-20, TM-22. Every POST operation of the server's own OpenAPI
schema is attacked, so a new endpoint is covered as soon as it has a sample body below.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests_support import LiveServer, raw_http

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
# Markers of internals that must never reach a client.
LEAKS = ("Traceback", 'File "', "site-packages", "pydantic.dev", "pingcalc/", "Exception")
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


def _assert_problem(response: httpx.Response, *statuses: int) -> dict[str, object]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == response.status_code and body["detail"]
    for leak in LEAKS:
        assert leak not in response.text, leak
    return body


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
        _assert_problem(streamed, 413)
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
            _assert_problem(response, 400, 422)
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
            _assert_problem(response, 400, 422)


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
            _assert_problem(client.post(path, content=body, headers=headers), 415)
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
    rid = plain.headers["x-request-id"]
    assert plain.status_code == 200 and rid != "req-42.a:b" and len(rid) == 32
    assert f'"request_id":"{rid}"' in server.log_text()
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
