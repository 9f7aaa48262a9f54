"""`GET /metrics`: Prometheus text for the `metrics` scope only, with counters that move.

Threats: information disclosure (metrics reveal traffic and refusal patterns, so scraping
needs a token with the `metrics` scope) and memory exhaustion through label cardinality
(random paths and methods must not create new series).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ping_fakes import RecordingBackend, services_with
from pingcalc.api.edge import Edge
from pingcalc.app import create_app
from pingcalc.settings import Settings
from tests_support import Tokens

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def api_factory(
    make_settings: Callable[..., Settings], open_client: Callable[[Edge], TestClient]
) -> Callable[..., TestClient]:
    def build(**overrides: object) -> TestClient:
        settings = make_settings(**overrides)
        return open_client(create_app(settings, services_with(settings, RecordingBackend())))

    return build


@pytest.fixture
def api(api_factory: Callable[..., TestClient]) -> TestClient:
    return api_factory()


def scrape(api: TestClient, tokens: Tokens) -> Samples:
    response = api.get("/metrics", headers=tokens.header("full"))
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_needs_a_token(api: TestClient) -> None:
    """Without a token /metrics is 401 with a Bearer challenge, and shows nothing."""
    response = api.get("/metrics")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "pingcalc_" not in response.text


def test_metrics_needs_the_metrics_scope(api: TestClient, tokens: Tokens) -> None:
    """A valid token without the `metrics` scope is 403; one with it gets the exposition text."""
    denied = api.get("/metrics", headers=tokens.header("calc"))
    assert denied.status_code == 403 and "pingcalc_" not in denied.text
    allowed = api.get("/metrics", headers=tokens.header("full"))
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE pingcalc_http_requests_total counter" in allowed.text


def test_request_counter_moves_by_route_template_and_status(
    api: TestClient, tokens: Tokens
) -> None:
    """Real requests move pingcalc_http_requests_total for their route template and status."""
    before = scrape(api, tokens)
    for _ in range(3):
        assert api.get("/healthz").status_code == 200
    api.post("/api/v1/ping", json={"target": "127.0.0.1"}, headers=tokens.header("pinger"))
    api.post("/api/v1/ping", json={"target": "127.0.0.1"})
    after = scrape(api, tokens)
    name = "pingcalc_http_requests_total"
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(after, name, **healthz) - value(before, name, **healthz) == 3
    ok = {"route": "/api/v1/ping", "method": "POST", "status": "200"}
    assert value(after, name, **ok) - value(before, name, **ok) == 1
    unauth = {"route": "/api/v1/ping", "method": "POST", "status": "401"}
    assert value(after, name, **unauth) - value(before, name, **unauth) == 1


def test_unknown_paths_and_methods_do_not_create_series(api: TestClient, tokens: Tokens) -> None:
    """Random paths count as `unmatched` and odd methods as `other`: no per-request series."""
    for index in range(20):
        api.get(f"/no/such/path/{index}")
    api.request("PROPFIND", "/healthz")
    text = api.get("/metrics", headers=tokens.header("full")).text
    assert "/no/such/path" not in text
    samples = scrape(api, tokens)
    name = "pingcalc_http_requests_total"
    assert value(samples, name, route="unmatched", method="GET", status="404") == 20
    assert value(samples, name, route="/healthz", method="other", status="405") == 1


def test_rejections_and_rate_limit_hits_are_counted_by_reason(
    api_factory: Callable[..., TestClient], tokens: Tokens
) -> None:
    """Refusals move pingcalc_rejections_total{reason}; the limit's refusals move its counter."""
    api = api_factory(rate_limit_per_token="3/minute")
    api.post("/api/v1/ping", json={"target": "127.0.0.1"})  # missing token
    api.post("/api/v1/ping", json={"target": "127.0.0.1"}, headers=tokens.header("calc"))
    pinger = tokens.header("pinger")
    api.post("/api/v1/ping", json={"target": "10.0.0.1"}, headers=pinger)  # denied target
    for _ in range(3):  # the third is over the limit (the previous request counted too)
        api.post("/api/v1/ping", json={"target": "127.0.0.1"}, headers=pinger)
    samples = scrape(api, tokens)
    rejections = "pingcalc_rejections_total"
    assert value(samples, rejections, reason="missing_token") == 1
    assert value(samples, rejections, reason="missing_scope") == 1
    assert value(samples, rejections, reason="target_denied") == 1
    assert value(samples, rejections, reason="token_rate_limit") == 1
    assert value(samples, "pingcalc_rate_limit_hits_total", limit="token_rate_limit") == 1


def test_ping_rtt_histogram_and_in_flight_gauge(api: TestClient, tokens: Tokens) -> None:
    """Each echo reply lands in the RTT histogram; the in-flight gauge is back to 0 after."""
    before = scrape(api, tokens)
    response = api.post(
        "/api/v1/ping", json={"target": "127.0.0.1", "count": 3}, headers=tokens.header("pinger")
    )
    assert response.status_code == 200
    after = scrape(api, tokens)
    count = "pingcalc_ping_rtt_seconds_count"
    assert value(after, count) - value(before, count) == 3
    total = value(after, "pingcalc_ping_rtt_seconds_sum") - value(
        before, "pingcalc_ping_rtt_seconds_sum"
    )
    expected = sum(reply["rtt_ms"] for reply in response.json()["replies"]) / 1000
    assert total == pytest.approx(expected)
    assert value(after, "pingcalc_pings_in_flight") == 0
    assert ("pingcalc_calculation_duration_seconds_count", ()) in after


def test_calculation_duration_histogram_counts_each_evaluation(
    api: TestClient, tokens: Tokens
) -> None:
    """Accepted and rejected evaluations both land in the calculation-duration histogram."""
    before = scrape(api, tokens)
    ok = api.post("/api/v1/calculate", json={"expression": "2**10"}, headers=tokens.header("calc"))
    bad = api.post("/api/v1/calculate", json={"expression": "1/0"}, headers=tokens.header("calc"))
    assert (ok.status_code, bad.status_code) == (200, 422)
    after = scrape(api, tokens)
    count = "pingcalc_calculation_duration_seconds_count"
    assert value(after, count) - value(before, count) == 2
    assert value(after, "pingcalc_calculation_duration_seconds_sum") > value(
        before, "pingcalc_calculation_duration_seconds_sum"
    )


@pytest.mark.prometheus
def test_exposition_passes_promtool(api: TestClient, tokens: Tokens) -> None:
    """The scrape output is valid Prometheus text according to Prometheus's own checker."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    api.get("/healthz")
    api.post("/api/v1/ping", json={"target": "127.0.0.1"})
    text = api.get("/metrics", headers=tokens.header("full")).text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
