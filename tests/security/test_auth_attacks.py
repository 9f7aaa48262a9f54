"""Attacks on authentication against a real server (threats TM-01, TM-03, TM-07, TM-09, TM-21).

The authenticated target is `GET /metrics` (scope `metrics`): it has no side effect, so every
request measures the authentication path and nothing else.
"""

from __future__ import annotations

import secrets
import statistics
import subprocess
import time
from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient

from pingcalc.settings import Settings
from probe_app import probe_app
from tests_support import PINGCALC, LiveServer, Tokens, audit_records

PROTECTED = "/metrics"
# Generous limits for tests that must not be throttled by accident.
NO_THROTTLE = {
    "PINGCALC_RATE_LIMIT_PER_IP": "100000/minute",
    "PINGCALC_RATE_LIMIT_PER_TOKEN": "100000/minute",
    "PINGCALC_AUTH_FAILURES_PER_IP": "100000/minute",
}
# Samples per timing distribution; interleaved so drift in machine load hits both alike.
TIMING_SAMPLES = 200
# Below this the difference of medians is scheduler noise on any machine (0.5 ms).
TIMING_FLOOR_S = 0.0005


def test_missing_or_garbled_authorization_is_rejected(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """No header, other schemes, junk, control bytes and huge values never authenticate."""
    server = server_factory(env=NO_THROTTLE)
    secret = tokens.secrets["full"]
    garbled: list[bytes | None] = [
        None,
        b"",
        b"Bearer",
        b"Bearer \t\t" + b"x",  # empty token after whitespace
        b"Basic dXNlcjpwYXNz",
        b"Token " + secret.encode(),
        b"Bearer" + secret.encode(),  # no separator
        b"Bearer " + secret.encode()[:-1],  # one character short
        b"Bearer " + secret.encode() + b"x",  # one character long
        b"Bearer " + secret.upper().encode(),
        b"Bearer " + secret.encode() + b"\t" + secret.encode(),
        b"Bearer \xff\xfe\x80" + secret.encode(),  # obs-text bytes
        b"Bearer pc_" + b"A" * 300,  # over MAX_PRESENTED_LENGTH
        b"Bearer pc_" + b"A" * 7000,  # near the server's header size limit
        b"Bearer pc_" + b"A" * 70000,  # beyond it
        b"Bearer %s, Bearer %s" % (secret.encode(), secret.encode()),
    ]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for value in garbled:
            headers = {} if value is None else {b"Authorization": value}
            try:
                response = client.get(PROTECTED, headers=headers)
            except httpx.RemoteProtocolError:
                continue  # the server dropped an oversized header block: refused, not accepted
            assert response.status_code in (400, 401, 431), value[:40] if value else value
            if response.status_code == 401:
                assert response.headers["www-authenticate"].startswith('Bearer realm="pingcalc"')
        # Two Authorization headers: only one is used, and the junk one must not win.
        response = client.get(
            PROTECTED, headers=[("Authorization", "Bearer junk"), ("Authorization", "Bearer x")]
        )
        assert response.status_code in (400, 401)
        # The legitimate request still works on the same server.
        ok = client.get(PROTECTED, headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200 and ok.text
    assert server.process.poll() is None


def test_token_guessing_is_throttled_per_address(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """Past N failed guesses from an address, further guesses get 429 with Retry-After."""
    server = server_factory(env={**NO_THROTTLE, "PINGCALC_AUTH_FAILURES_PER_IP": "5/minute"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        right = {"Authorization": f"Bearer {tokens.secrets['full']}"}
        assert client.get(PROTECTED, headers=right).status_code == 200
        for _ in range(5):
            guess = {"Authorization": f"Bearer pc_{secrets.token_urlsafe(32)}"}
            assert client.get(PROTECTED, headers=guess).status_code == 401
        for _ in range(3):
            guess = {"Authorization": f"Bearer pc_{secrets.token_urlsafe(32)}"}
            response = client.get(PROTECTED, headers=guess)
            assert response.status_code == 429
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["reason"] == "auth_failure_limit"
        # Open endpoints are not part of the penalty.
        assert client.get("/healthz").status_code == 200
    reasons = [record["reason"] for record in audit_records(server.log_text())]
    assert reasons.count("invalid_token") == 5 and "auth_failure_limit" in reasons


def test_throttle_is_keyed_by_client_address(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """One address's guessing throttles that address's guesses, not another address's."""
    app = probe_app(make_settings(auth_failures_per_ip="3/minute"))
    with (
        TestClient(app, client=("203.0.113.7", 40000)) as attacker,
        TestClient(app, client=("198.51.100.9", 40001)) as victim,
    ):
        for i in range(3):
            bad = {"Authorization": f"Bearer pc_guess{i:040d}"}
            assert attacker.get("/probe/ping", headers=bad).status_code == 401
        assert (
            attacker.get("/probe/ping", headers={"Authorization": "Bearer pc_x"}).status_code == 429
        )
        assert (
            victim.get("/probe/ping", headers={"Authorization": "Bearer pc_y"}).status_code == 401
        )
        assert victim.get("/probe/ping", headers=tokens.header("pinger")).status_code == 200


def test_forwarded_for_header_does_not_change_the_client_address(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """A client-chosen X-Forwarded-For neither resets the throttle nor lands in the audit trail."""
    server = server_factory(env={**NO_THROTTLE, "PINGCALC_AUTH_FAILURES_PER_IP": "3/minute"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(3):
            headers = {
                "Authorization": f"Bearer pc_{secrets.token_urlsafe(32)}",
                "X-Forwarded-For": f"192.0.2.{i + 1}",
                "X-Real-IP": f"192.0.2.{i + 1}",
            }
            assert client.get(PROTECTED, headers=headers).status_code == 401
        spoofed = {
            "Authorization": f"Bearer pc_{secrets.token_urlsafe(32)}",
            "X-Forwarded-For": "192.0.2.200",
        }
        assert client.get(PROTECTED, headers=spoofed).status_code == 429
        valid = {
            "Authorization": f"Bearer {tokens.secrets['full']}",
            "X-Forwarded-For": "192.0.2.9",
        }
        assert client.get(PROTECTED, headers=valid).status_code == 200
    addresses = {
        record["client_ip"] for record in audit_records(server.log_text()) if record["reason"]
    }
    assert addresses == {"127.0.0.1"}


def test_token_over_its_rate_is_refused_with_retry_after(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """A token over its request rate gets 429 + Retry-After; another token is unaffected."""
    tokens.add("scraper", "metrics")
    server = server_factory(env={**NO_THROTTLE, "PINGCALC_RATE_LIMIT_PER_TOKEN": "3/minute"})
    with server.client("full") as busy, server.client("scraper") as other:
        assert [busy.get(PROTECTED).status_code for _ in range(3)] == [200, 200, 200]
        response = busy.get(PROTECTED)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["reason"] == "token_rate_limit"
        assert other.get(PROTECTED).status_code == 200


def test_wrong_token_timing_does_not_depend_on_shared_prefix(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """A guess sharing a long prefix with a real token is not measurably slower (TM-03)."""
    server = server_factory(env=NO_THROTTLE)
    secret = tokens.secrets["full"]
    # Same length as the real token: all but the last character match.
    near = secret[:-1] + ("A" if secret[-1] != "A" else "B")

    def far() -> str:
        return "pc_" + secrets.token_urlsafe(32)[: len(secret) - 3]

    near_times: list[float] = []
    far_times: list[float] = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(20):  # warm up connection, caches and the allocator
            client.get(PROTECTED, headers={"Authorization": f"Bearer {far()}"})
        for i in range(TIMING_SAMPLES * 2):
            use_near = i % 2 == 0
            token = near if use_near else far()
            started = time.perf_counter()
            response = client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})
            elapsed = time.perf_counter() - started
            assert response.status_code == 401
            (near_times if use_near else far_times).append(elapsed)
        # The right token still works after all those failures (limits are high here).
        ok = client.get(PROTECTED, headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200
    difference = abs(statistics.median(near_times) - statistics.median(far_times))
    spread = statistics.median(
        abs(t - statistics.median(far_times)) for t in far_times
    )  # median absolute deviation of the random-guess distribution
    bound = max(TIMING_FLOOR_S, 3 * spread)
    assert difference < bound, (difference, bound)


def test_revoked_token_is_refused_by_a_running_server(
    server_factory: Callable[..., LiveServer], tokens: Tokens
) -> None:
    """`pingcalc token revoke` takes effect at the next request; other tokens keep working."""
    tokens.add("scraper", "metrics")
    server = server_factory(env=NO_THROTTLE)
    with server.client("full") as revoked, server.client("scraper") as other:
        assert revoked.get(PROTECTED).status_code == 200
        result = subprocess.run(
            [PINGCALC, "--tokens-file", str(tokens.path), "token", "revoke", "full"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        response = revoked.get(PROTECTED)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert other.get(PROTECTED).status_code == 200
