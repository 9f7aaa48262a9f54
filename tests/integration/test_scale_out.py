"""Scale out: limits shared through a real Redis by real servers, outage fallback, graceful stop.

Threats: T1499 Endpoint DoS (limits must hold across replicas), NIST SC-5; availability of
the limiter itself (a Redis outage must neither lift the limits nor fail requests).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests_support import LiveServer, Tokens, free_port

pytestmark = pytest.mark.redis

CALC = "/api/v1/calculate"
PING = "/api/v1/ping"


@dataclass
class RedisServer:
    """A real redis-server on a loopback port and a Unix socket, that a test can stop and
    start again."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket(self) -> Path:
        return self.workdir / "redis.sock"

    @property
    def socket_uri(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is required (apt-get install redis-server)"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import redis

                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    # A short directory: a Unix socket's path must fit in 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="pcredis-", dir="/tmp"))
    server = RedisServer(free_port(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _shared_env(redis: RedisServer, *, uri: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "PINGCALC_RATE_LIMIT_STORAGE": uri or redis.uri,
        "PINGCALC_RATE_LIMIT_PER_TOKEN": "10/minute",
        "PINGCALC_RATE_LIMIT_PER_IP": "100000/minute",
        **extra,
    }


def _calc(server: LiveServer, tokens: Tokens, name: str = "calc") -> int:
    response = httpx.post(
        server.url + CALC, json={"expression": "1+1"}, headers=tokens.header(name), timeout=10
    )
    assert response.status_code in (200, 429), response.text
    return response.status_code


def _events(server: LiveServer, name: str) -> list[dict[str, object]]:
    events = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                events.append(record)
    return events


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_token_rate_limit_is_shared_across_two_servers(
    transport: str,
    redis_server: RedisServer,
    server_factory: Callable[..., LiveServer],
    tokens: Tokens,
) -> None:
    """Two replicas on one Redis, over TCP or its Unix socket (the stack's only listener),
    admit exactly the token's limit between them, not twice it.

    No tarpit here: held refusals would stretch the burst past one refill interval (6 s at
    10/minute), and the GCRA rightly admits one more after each interval."""
    uri = redis_server.socket_uri if transport == "unix" else redis_server.uri
    env = _shared_env(redis_server, uri=uri, PINGCALC_PENALTY_DELAY_SECONDS="0")
    a, b = server_factory(env=env), server_factory(env=env)
    codes = [_calc(server, tokens) for _ in range(10) for server in (a, b)]
    assert codes.count(200) == 10 and codes.count(429) == 10, codes
    # Another token has its own budget: the legitimate client is unaffected.
    assert _calc(a, tokens, "full") == 200


def _slow_ping_servers(
    redis: RedisServer, start: Callable[..., LiveServer], **caps: str
) -> tuple[LiveServer, LiveServer]:
    """Two replicas on one Redis whose pings (subprocess, 5 echoes 0.3 s apart) last ~1.5 s."""
    env = _shared_env(
        redis,
        PINGCALC_PING_BACKEND="subprocess",
        PINGCALC_PING_INTERVAL_SECONDS="0.3",
        PINGCALC_RATE_LIMIT_PER_TOKEN="1000/minute",
        **caps,
    )
    return start(env=env), start(env=env)


def _ping(server: LiveServer, tokens: Tokens) -> int:
    response = httpx.post(
        server.url + PING,
        json={"target": "127.0.0.1", "count": 1},
        headers=tokens.header("pinger"),
        timeout=20,
    )
    return response.status_code


@contextmanager
def _ping_in_flight(server: LiveServer, tokens: Tokens) -> Iterator[None]:
    """A live ping on `server` that holds its slot for the whole block: its first reply has
    arrived when the block starts (so the slot is taken, whatever the machine's load), and
    four more are still to come."""
    with httpx.stream(
        "POST",
        server.url + PING,
        json={"target": "127.0.0.1", "count": 5},
        headers={**tokens.header("pinger"), "Accept": "application/x-ndjson"},
        timeout=20,
    ) as response:
        assert response.status_code == 200, response.read()
        lines = response.iter_lines()
        assert json.loads(next(lines))["event"] == "reply"
        yield
        *_, last = lines
        assert json.loads(last)["received"] == 5


@pytest.mark.ping_binary
def test_ping_cap_is_shared_across_two_servers(
    redis_server: RedisServer, server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """The per-token ping cap counts pings in flight on every replica (T1499)."""
    a, b = _slow_ping_servers(redis_server, server_factory, PINGCALC_PING_MAX_PER_TOKEN="2")
    with _ping_in_flight(a, tokens), _ping_in_flight(b, tokens):
        assert (_ping(a, tokens), _ping(b, tokens)) == (429, 429)
    # Once they finish, the slots are free again on both replicas.
    assert (_ping(a, tokens), _ping(b, tokens)) == (200, 200)


@pytest.mark.ping_binary
def test_total_ping_cap_stays_per_process_with_redis(
    redis_server: RedisServer, server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """The total in-flight cap protects each process's own sockets: with Redis, two replicas
    each take their own cap's worth (adding replicas adds capacity), one replica refuses the
    excess at once with 503."""
    a, b = _slow_ping_servers(
        redis_server,
        server_factory,
        PINGCALC_PING_MAX_IN_FLIGHT="1",
        PINGCALC_PING_MAX_PER_TOKEN="4",
    )
    with _ping_in_flight(a, tokens):
        assert _ping(a, tokens) == 503
        assert _ping(b, tokens) == 200
    assert _ping(a, tokens) == 200


@pytest.mark.ping  # expects /readyz 'ready', which needs a ping backend
def test_redis_outage_falls_back_to_per_process_limits_and_recovers(
    redis_server: RedisServer, server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """Redis down: still limited (per process), /readyz degraded, audited; back up: shared again."""
    a = server_factory(env=_shared_env(redis_server))
    b = server_factory(env=_shared_env(redis_server))
    assert httpx.get(a.url + "/readyz").json()["status"] == "ready"

    redis_server.stop()
    codes_a = [_calc(a, tokens) for _ in range(12)]
    # Limited by the process's own memory counts: never unlimited, never a 500.
    assert codes_a[:10] == [200] * 10 and codes_a[10:] == [429, 429]
    ready = httpx.get(a.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert _events(a, "rate_limit_storage_degraded")

    redis_server.start()
    deadline = time.monotonic() + 15
    while httpx.get(a.url + "/readyz").json()["status"] != "ready":
        assert time.monotonic() < deadline, "readyz did not recover"
        time.sleep(0.3)
    # Requests switch the limiter back to Redis (at most one retry interval later).
    time.sleep(2.1)
    for server in (a, b):
        _calc(server, tokens, "full")
    assert _events(a, "rate_limit_storage_recovered")
    # Shared again: the fresh Redis counts both replicas together.
    shared = [_calc(server, tokens, "full") for _ in range(6) for server in (a, b)]
    # "full" already used one request on each replica since recovery: 8 more fit in 10.
    assert shared.count(200) == 8 and shared.count(429) == 4


def test_workers_share_limits_through_redis(
    redis_server: RedisServer, server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """`pingcalc serve --workers 2`: the limit holds across the worker processes."""
    env = _shared_env(redis_server, PINGCALC_PENALTY_DELAY_SECONDS="0")  # see above
    server = server_factory(env=env, args=["--workers", "2"])
    codes = []
    for _ in range(20):
        # A new connection each time, so requests spread over both workers.
        codes.append(_calc(server, tokens))
    assert codes.count(200) == 10 and codes.count(429) == 10, codes
    assert server.stop() == 0


@pytest.mark.ping_binary
def test_sigterm_lets_in_flight_ping_finish_then_exits_zero(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """Graceful shutdown: a ping in flight at SIGTERM completes with 200; new connections are
    refused; the process exits 0."""
    server = server_factory(
        env={
            "PINGCALC_PING_BACKEND": "subprocess",
            "PINGCALC_PING_INTERVAL_SECONDS": "0.4",
            "PINGCALC_SHUTDOWN_GRACE_SECONDS": "10",
        }
    )
    result: dict[str, httpx.Response] = {}

    def ping() -> None:
        result["response"] = httpx.post(
            server.url + PING,
            json={"target": "127.0.0.1", "count": 4},
            headers=tokens.header("pinger"),
            timeout=20,
        )

    thread = threading.Thread(target=ping)
    thread.start()
    time.sleep(0.5)  # the ping is now in flight (it takes about 1.2 s)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz", timeout=2)
    thread.join(20)
    response = result["response"]
    assert response.status_code == 200 and response.json()["received"] == 4
    assert server.process.wait(15) == 0
