"""Schema-based fuzzing of the real server from its own /openapi.json (TM-06, TM-08, TM-20).

schemathesis generates valid and invalid requests for every operation; each response must not
be a 5xx and must match the schema. Bounded: at most MAX_EXAMPLES per operation.

Ping safety: the server runs with a deny list covering every address outside 127.0.0.0/8
(and all of IPv6), so whatever target the fuzzer invents is refused before any packet is
sent; only loopback could ever be pinged.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Network, ip_network

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests_support import LiveServer

# Per operation; keeps the whole run under a minute on two shared cores.
MAX_EXAMPLES = 50
LOOPBACK = ip_network("127.0.0.0/8")
# Everything but loopback, as CIDRs for PINGCALC_PING_DENY (deny wins over allow and defaults).
DENY_ALL_BUT_LOOPBACK = [
    str(net)
    for net in sorted(
        IPv4Network("0.0.0.0/0").address_exclude(LOOPBACK)  # type: ignore[arg-type]
    )
] + ["::/0"]


@pytest.fixture
def fuzz_server(server_factory: Callable[..., LiveServer]) -> LiveServer:
    return server_factory(
        env={
            "PINGCALC_RATE_LIMIT_PER_IP": "100000/minute",
            "PINGCALC_RATE_LIMIT_PER_TOKEN": "100000/minute",
            "PINGCALC_AUTH_FAILURES_PER_IP": "100000/minute",
            "PINGCALC_PING_DENY": ",".join(DENY_ALL_BUT_LOOPBACK),
            "PINGCALC_PING_TIMEOUT_SECONDS": "0.2",
            "PINGCALC_PING_INTERVAL_SECONDS": "0",
        }
    )


@pytest.fixture
def api_schema(fuzz_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure reproduces
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_schema_under_fuzzing(
    case: schemathesis.Case, fuzz_server: LiveServer
) -> None:
    """No generated request gets a 5xx, and every response matches the OpenAPI schema."""
    headers = {"Authorization": f"Bearer {fuzz_server.tokens.secrets['full']}"}
    response = case.call(headers=headers, timeout=10)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    assert fuzz_server.process.poll() is None
