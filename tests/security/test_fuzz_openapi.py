"""Schema-based fuzzing of the real server from its own /openapi.json (TM-06, TM-08, TM-20).

schemathesis generates valid and invalid requests for every operation; each response must not
be a 5xx and must match the schema. Bounded: at most MAX_EXAMPLES per operation.

Ping safety: the server runs with a deny list covering every address outside 127.0.0.0/8
(and all of IPv6), so whatever target the fuzzer invents is refused before any packet is
sent; only loopback could ever be pinged. Host names the fuzzer invents are resolved only by
the tests' DNS server on loopback (`PINGCALC_PING_RESOLVER`), never the system resolver, so
no lookup leaves the machine either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from ipaddress import IPv4Network, ip_address
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance

from dns_server import DnsServer
from tests_support import LiveServer

# Per operation; keeps the whole run under a minute on two shared cores.
MAX_EXAMPLES = 50
LOOPBACK = IPv4Network("127.0.0.0/8")
# Everything but loopback, as CIDRs for PINGCALC_PING_DENY (deny wins over allow and defaults).
DENY_ALL_BUT_LOOPBACK = [
    str(net) for net in sorted(IPv4Network("0.0.0.0/0").address_exclude(LOOPBACK))
] + ["::/0"]


@pytest.fixture
def fuzz_server(server_factory: Callable[..., LiveServer], dns_server: DnsServer) -> LiveServer:
    dns_server.add("fuzz.test", "A", "127.0.0.1")  # one known name; the rest are NXDOMAIN
    return server_factory(
        env={
            "PINGCALC_PING_RESOLVER": dns_server.url,
            "PINGCALC_PING_RESOLVE_TIMEOUT_SECONDS": "0.5",
            "PINGCALC_RATE_LIMIT_PER_IP": "100000/minute",
            "PINGCALC_RATE_LIMIT_PER_TOKEN": "100000/minute",
            "PINGCALC_AUTH_FAILURES_PER_IP": "100000/minute",
            "PINGCALC_PING_DENY": ",".join(DENY_ALL_BUT_LOOPBACK),
            "PINGCALC_PING_TIMEOUT_SECONDS": "0.2",
            "PINGCALC_PING_INTERVAL_SECONDS": "0",
        }
    )


def test_api_matches_its_schema_under_fuzzing(
    fuzz_server: LiveServer, dns_server: DnsServer
) -> None:
    """No generated request, valid or not, gets a 5xx; every response matches the schema."""
    # The pytest integration (`from_fixture`) does not run under pytest 9; one Hypothesis
    # run per operation and mode does the same with a stable node id for threats.yaml.
    api = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_server.tokens.secrets['full']}"}
    checks = [not_a_server_error, response_schema_conformance]
    operations = []
    for result in api.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation the schema cannot describe: schemathesis says why
        operations.append(result.ok())
    labels = {operation.label for operation in operations}
    assert {"POST /api/v1/ping", "POST /api/v1/calculate", "GET /metrics", "GET /healthz"} <= labels
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,  # the same examples every run: a failure reproduces
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: schemathesis.Case[Any]) -> None:
                nonlocal calls
                calls += 1
                response = case.call(headers=headers, timeout=10)
                case.validate_response(response, checks=checks)

            try:
                fuzz()
            except Unsatisfiable:
                # An operation without inputs has no invalid request to generate.
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert calls >= len(operations)  # something was really sent
    assert fuzz_server.process.poll() is None
    # No ping left loopback: every ping that ran targeted 127.0.0.0/8.
    pinged = [
        json.loads(line) for line in fuzz_server.log_text().splitlines() if '"event":"ping"' in line
    ]
    assert all(ip_address(e["target"]) in LOOPBACK for e in pinged if e.get("log") == "audit")
    # The names the fuzzer invented were looked up here, on loopback (derandomized: stable).
    assert dns_server.queries
