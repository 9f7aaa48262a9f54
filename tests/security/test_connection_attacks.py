"""Connection-level attacks on a real server: huge heads, slow and idle connections (TM-09).

Each test runs the attack against a real `pingcalc serve` process and proves both that the
attack fails (memory stays bounded, attacking connections are closed) and that legitimate
clients are served throughout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests_support import LiveServer, Tokens, log_records, rss_mib, server_address

MIB = 1024 * 1024


def healthz_ok(server: LiveServer, timeout: float = 2.0) -> bool:
    """A new client's /healthz answers 200 within `timeout` seconds."""
    try:
        return httpx.get(server.url + "/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def stream_header(server: LiveServer, total: int) -> tuple[int, bytes]:
    """Send a request head with one header of `total` bytes; (bytes sent, answer)."""
    with socket.create_connection(server_address(server), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, chunk = 0, b"a" * 65536
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection: what it answered is below
        try:
            return sent, sock.recv(4096)
        except OSError:
            return sent, b""


def test_a_huge_header_is_refused_with_431_and_memory_stays_bounded(
    live_server: LiveServer,
) -> None:
    """48 MB of header on one connection grows the server by < 24 MB, answered 431 (T1499)."""
    before = rss_mib(live_server.process.pid)
    sent, answer = stream_header(live_server, 48 * MIB)
    grown = rss_mib(live_server.process.pid) - before
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert b"application/problem+json" in answer
    assert grown < 24, f"RSS grew {grown:.1f} MiB after {sent} bytes of header"
    assert sent < 48 * MIB  # the server hung up long before the header ended
    assert healthz_ok(live_server)
    refused = [r for r in log_records(live_server.log_text()) if r.get("status") == 431]
    assert refused and refused[0]["reason"] == "header_too_large"


def test_three_huge_headers_at_once_stay_bounded(live_server: LiveServer) -> None:
    """Three connections at once cannot add up past the container's memory limit (T1499)."""
    before = rss_mib(live_server.process.pid)
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: answers.append(stream_header(live_server, 32 * MIB)[1]))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 3 and all(a.startswith(b"HTTP/1.1 431 ") for a in answers)
    assert rss_mib(live_server.process.pid) - before < 24
    assert healthz_ok(live_server)


def test_a_head_just_under_the_cap_is_served(live_server: LiveServer) -> None:
    """The cap is on abuse, not on real clients: a 30 KiB head (cap 32 KiB) gets its answer."""
    value = "a" * (30 * 1024)
    response = httpx.get(live_server.url + "/healthz", headers={"X-Big": value}, timeout=10)
    assert response.status_code == 200


def test_too_many_header_fields_are_refused_with_431(live_server: LiveServer) -> None:
    """A flood of tiny headers (CPU per header) is cut off at the field cap (T1499)."""
    fields = b"".join(b"X-%d: 1\r\n" % n for n in range(500))
    with socket.create_connection(server_address(live_server), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 ")
    fine = b"".join(b"X-%d: 1\r\n" % n for n in range(50))
    with socket.create_connection(server_address(live_server), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fine + b"Connection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def server_sockets(server: LiveServer) -> int:
    """How many sockets the server process holds open (its listener included)."""
    count = 0
    for fd in Path(f"/proc/{server.process.pid}/fd").iterdir():
        # An fd closed between the listing and the read is not open.
        with contextlib.suppress(FileNotFoundError):
            count += os.readlink(fd).startswith("socket:")
    return count


def ends(sock: socket.socket, within: float = 3.0) -> bool:
    """Whether the server ends `sock` (EOF or reset) within `within` seconds, reading and
    discarding whatever it sent before."""
    sock.setblocking(True)
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (EOF or reset), without waiting."""
    sock.setblocking(False)
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 408")


@contextmanager
def trickling(server: LiveServer, count: int, every: float) -> Iterator[list[socket.socket]]:
    """`count` connections that send one header line every `every` seconds, never ending."""
    socks = [socket.create_connection(server_address(server), timeout=5) for _ in range(count)]
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()

    def drip() -> None:
        n = 0
        while not stop.wait(every):
            n += 1
            for sock in socks:
                try:
                    sock.sendall(b"X-Drip-%d: 1\r\n" % n)
                except OSError:
                    continue

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        yield socks
    finally:
        stop.set()
        dripper.join(5)
        for sock in socks:
            sock.close()


def test_slow_and_idle_connections_are_closed_while_health_checks_keep_answering(
    server_factory: Callable[..., LiveServer],
) -> None:
    """120 slowloris connections (60 trickling a header line every 2 s, 60 sending nothing)
    are all closed within 30 s, and /healthz from a new client answers throughout (T1499)."""
    server = server_factory(env={"PINGCALC_MAX_CONNECTIONS_PER_CLIENT": "1000"})
    idle = [socket.create_connection(server_address(server), timeout=5) for _ in range(60)]
    started = time.monotonic()
    with trickling(server, 60, every=2.0) as slow:
        everyone = idle + slow
        open_socks = set(range(len(everyone)))
        health = []
        while open_socks and time.monotonic() - started < 30:
            health.append(healthz_ok(server))
            open_socks = {i for i in open_socks if not closed_by_peer(everyone[i])}
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    for sock in idle:
        sock.close()
    print(f"120 slow connections closed after {elapsed:.1f} s")
    assert not open_socks, f"{len(open_socks)} of 120 still open after {elapsed:.0f} s"
    assert all(health) and len(health) >= 5


def test_the_connection_cap_evicts_idle_connections_for_new_clients(
    server_factory: Callable[..., LiveServer],
) -> None:
    """With every slot held by idle connections, a health check still gets in: the oldest
    idle connection gives way, never one being answered (T1499)."""
    server = server_factory(
        env={"PINGCALC_MAX_CONNECTIONS": "32", "PINGCALC_MAX_CONNECTIONS_PER_CLIENT": "1000"}
    )
    idle = [socket.create_connection(server_address(server), timeout=5) for _ in range(100)]
    try:
        time.sleep(0.5)
        assert all(healthz_ok(server) for _ in range(5))
        still_open = sum(not closed_by_peer(sock) for sock in idle)
        assert still_open <= 32
    finally:
        for sock in idle:
            sock.close()


def test_one_client_cannot_hold_more_than_its_share_of_connections(
    server_factory: Callable[..., LiveServer],
) -> None:
    """Past the per-client cap, a client's own oldest idle connection gives way (T1499)."""
    server = server_factory(env={"PINGCALC_MAX_CONNECTIONS_PER_CLIENT": "8"})
    idle = [socket.create_connection(server_address(server), timeout=5) for _ in range(40)]
    try:
        time.sleep(0.5)
        assert sum(not closed_by_peer(sock) for sock in idle) <= 8
        assert healthz_ok(server)
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize("late", [False, True])
def test_a_request_body_must_arrive_before_the_read_deadline(
    server_factory: Callable[..., LiveServer], tokens: Tokens, late: bool
) -> None:
    """A POST whose body trickles past the read deadline is answered 408 and closed, and
    logged once as a timeout (slow POST, T1499; a 408, not a silent close, so a proxy in front
    tells its client 408 instead of 502); one that arrives in time is answered."""
    server = server_factory(env={"PINGCALC_REQUEST_READ_TIMEOUT_SECONDS": "3"})
    head = (
        b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + tokens.secrets["calc"].encode() + b"\r\n"
        b"Content-Length: 20\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(server_address(server), timeout=10) as sock:
        sock.sendall(head + b'{"expres')
        if late:
            time.sleep(4)  # past the 3 s deadline
        answer = b""
        try:
            sock.sendall(b'sion":"6*7"}')
            while chunk := sock.recv(4096):
                answer += chunk
        except OSError:
            pass
    if late:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request-timeout" in answer
        access = [r for r in log_records(server.log_text()) if r.get("event") == "access"]
        timed_out = [r for r in access if r.get("path") == "/api/v1/calculate"]
        assert [(r["status"], r["reason"]) for r in timed_out] == [(408, "request_timeout")]
        assert not [r for r in access if r.get("status") == 499]
        assert "Traceback" not in server.log_text()
    else:
        assert answer.startswith(b"HTTP/1.1 200") and b'"result":42' in answer


def test_a_pipelining_flood_is_cut_off_and_memory_stays_bounded(
    server_factory: Callable[..., LiveServer],
) -> None:
    """Thousands of tiny requests sent back to back on connections that never read an answer
    cannot queue thousands of request cycles (the attack pass's F1: 16 MB grew the server to
    1.8 GB): past a few queued requests the connection is dropped (T1499)."""
    server = server_factory(env={"PINGCALC_MAX_CONNECTIONS_PER_CLIENT": "1000"})
    before = rss_mib(server.process.pid)
    flood = b"GET /healthz HTTP/1.1\r\n\r\n" * 10_000  # 250 KB per connection
    socks = []
    for _ in range(32):
        sock = socket.create_connection(server_address(server), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        with suppress(OSError):
            sock.send(flood)
        socks.append(sock)
    try:
        time.sleep(2)
        assert rss_mib(server.process.pid) - before < 24
        assert healthz_ok(server)
        assert server_sockets(server) <= 4  # the listener and the probes, no flooder
        assert all(ends(sock) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    # A modest pipeline is still served, every answer in order.
    with socket.create_connection(server_address(server), timeout=10) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\n\r\n" * 4
            + b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        answers = b""
        while chunk := sock.recv(65536):
            answers += chunk
    assert answers.count(b"HTTP/1.1 200 OK") == 5


def test_trailers_cannot_stream_past_the_request_cap(live_server: LiveServer) -> None:
    """Headers after a chunked body (trailers) are counted too: an endless trailer is cut off
    and memory stays bounded (the attack pass's F2: 80 MB accepted, +108 MB)."""
    before = rss_mib(live_server.process.pid)
    with socket.create_connection(server_address(live_server), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n0\r\nX-Trailer: "
        )
        sent = 0
        try:
            while sent < 32 * MIB:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass
    assert sent < 32 * MIB
    assert rss_mib(live_server.process.pid) - before < 24
    assert healthz_ok(live_server)


def test_connections_with_unread_answers_are_really_closed(
    server_factory: Callable[..., LiveServer],
) -> None:
    """A client that never reads its answers cannot keep sockets past the caps and deadlines:
    once the kernel's send queue is full, an expired or evicted connection with answers still
    in the server's own buffer is aborted, not left to drain for ever (the attack pass's F3:
    20 sockets held against a per-client cap of 4)."""
    server = server_factory(
        env={"PINGCALC_MAX_CONNECTIONS_PER_CLIENT": "4", "PINGCALC_KEEPALIVE_TIMEOUT_SECONDS": "1"}
    )
    batch = b"GET /openapi.json HTTP/1.1\r\n\r\n" * 4  # within the pipelining bound
    socks = []
    try:
        for _ in range(7):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.connect(server_address(server))
            socks.append(sock)
            # Enough unread answers to fill the kernel's send queue (a few MB) and more.
            for _ in range(150):
                with suppress(OSError):
                    sock.sendall(batch)
                time.sleep(0.02)
        time.sleep(3)  # past the keep-alive expiry
        held = server_sockets(server)
        assert held <= 4 + 1, held  # the per-client cap, plus the listener
        assert healthz_ok(server)
    finally:
        for sock in socks:
            sock.close()


def test_clients_that_leave_with_queued_answers_are_not_server_errors(
    live_server: LiveServer,
) -> None:
    """Pipelined requests whose client leaves before reading are the client's event (499),
    never a 500 with a traceback in the log (the attack pass's F5)."""
    for _ in range(5):
        sock = socket.create_connection(server_address(live_server), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\n\r\n" * 4)
        time.sleep(0.3)
        sock.close()
    time.sleep(1)
    text = live_server.log_text()
    assert "Traceback" not in text and "unhandled_exception" not in text
    assert not [r for r in log_records(text) if r.get("status") == 500]
    assert healthz_ok(live_server)


def test_peers_outside_the_connect_allow_list_are_dropped_before_any_byte_is_read(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """Behind a proxy, only the proxy may connect: anyone reaching the server around it (the
    stack's attack pass reached every replica from the Docker host, plain HTTP, with a fresh
    failure budget per path) is dropped unanswered and logged (TM-21, TM-37)."""
    server = server_factory(env={"PINGCALC_CONNECT_ALLOW_IPS": "127.0.0.1/32"})
    host, port = server_address(server)
    request = (
        b"POST /api/v1/calculate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 20\r\n"
        b"Authorization: Bearer " + tokens.secrets["calc"].encode() + b"\r\n\r\n"
        b'{"expression":"6*7"}'
    )

    def send_from(source: str) -> bytes:
        answer = b""
        address = (source, 0)
        with socket.create_connection((host, port), 5, address) as s, suppress(OSError):
            s.sendall(request)
            while chunk := s.recv(4096):
                answer += chunk
        return answer

    assert send_from("127.0.0.3") == b""
    assert send_from("127.0.0.4") == b""
    # The allowed peer is served as before.
    answer = send_from("127.0.0.1")
    assert answer.startswith(b"HTTP/1.1 200") and b'"result":42' in answer
    refused = [r for r in log_records(server.log_text()) if r.get("event") == "connection_refused"]
    assert [(r["client_ip"], r["reason"]) for r in refused] == [
        ("127.0.0.3", "peer_not_allowed"),
        ("127.0.0.4", "peer_not_allowed"),
    ]
