"""The gatekeeper without HTTP: the order of its checks, and whom each one refuses (TM-03, TM-09).

address limit and penalty box -> token -> (failed token only) failure limit -> scope ->
audit availability -> token limit.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from pingcalc.audit import Auditor, ChainedFileSink, StdoutSink
from pingcalc.auth import TokenRecord, TokenStore, create_token
from pingcalc.gate import Client, Gate, Refusal, client_key
from pingcalc.settings import Scope
from pingcalc.throttle import PenaltyBox, RateLimiter
from tests_support import AuditKeys

ALICE = Client.of("192.0.2.10")
BOB = Client.of("198.51.100.20")


class World:
    """A gate over a real token store, limiter and penalty box, with tight limits."""

    def __init__(self, tmp_path: Path, *, audit: Auditor | None = None, **rates: str) -> None:
        path = tmp_path / "tokens.json"
        self.calc = create_token(path, "calc", ["calculate"])[1].reveal()
        self.metrics = create_token(path, "metrics", ["metrics"])[1].reveal()
        self.box = PenaltyBox()
        self.gate = Gate(
            tokens=TokenStore(path),
            limiter=RateLimiter(),
            box=self.box,
            audit=audit or Auditor([StdoutSink(io.StringIO())]),
            per_ip=rates.get("per_ip", "100/minute"),
            auth_failures=rates.get("auth_failures", "100/minute"),
            per_token=rates.get("per_token", "100/minute"),
        )

    def admit(
        self, client: Client, presented: str | None, scope: Scope = "calculate"
    ) -> TokenRecord | Refusal:
        return asyncio.run(self.gate.admit(client, presented, scope))


def reason(decision: object) -> str:
    assert isinstance(decision, Refusal), decision
    return decision.reason


def test_a_valid_token_with_its_scope_is_admitted(tmp_path: Path) -> None:
    """The legitimate case: the token's record comes back."""
    world = World(tmp_path)
    decision = world.admit(ALICE, world.calc)
    assert isinstance(decision, TokenRecord) and decision.name == "calc"


def test_the_address_limit_comes_first_and_boxes_the_address(tmp_path: Path) -> None:
    """Over its address limit, a client is refused whatever it presents, and boxed."""
    world = World(tmp_path, per_ip="2/minute")
    assert isinstance(world.admit(ALICE, world.calc), TokenRecord)
    assert reason(world.admit(ALICE, "pc_wrong")) == "invalid_token"
    refused = world.admit(ALICE, world.calc)
    assert reason(refused) == "ip_rate_limit"
    assert isinstance(refused, Refusal) and refused.status == 429 and refused.retry_after >= 1
    assert world.gate.screen(ALICE, world.calc) is not None
    assert isinstance(world.admit(BOB, world.calc), TokenRecord)


def test_failures_refuse_further_failures_never_a_valid_token(tmp_path: Path) -> None:
    """Past the failure limit an address's guesses get 429; its valid token still passes."""
    world = World(tmp_path, auth_failures="3/minute")
    assert [reason(world.admit(ALICE, f"pc_guess{n}")) for n in range(3)] == ["invalid_token"] * 3
    assert reason(world.admit(ALICE, "pc_guess4")) == "auth_failure_limit"
    assert reason(world.admit(ALICE, None)) == "auth_failure_limit"
    assert isinstance(world.admit(ALICE, world.calc), TokenRecord)
    assert reason(world.admit(BOB, "pc_guess")) == "invalid_token"


def test_a_missing_and_an_invalid_token_are_told_apart(tmp_path: Path) -> None:
    """401 with the bearer challenge; `error="invalid_token"` only when one was presented."""
    world = World(tmp_path)
    missing, invalid = world.admit(ALICE, None), world.admit(ALICE, "")
    assert isinstance(missing, Refusal) and isinstance(invalid, Refusal)
    assert (missing.status, missing.reason, missing.event) == (401, "missing_token", "auth_failure")
    assert missing.challenge == 'Bearer realm="pingcalc"'
    assert invalid.reason == "invalid_token" and 'error="invalid_token"' in str(invalid.challenge)


def test_scope_is_checked_after_the_token_and_is_not_a_failure(tmp_path: Path) -> None:
    """A valid token without the scope gets 403, audited, without spending the failure budget."""
    world = World(tmp_path, auth_failures="1/minute")
    for _ in range(3):
        refused = world.admit(ALICE, world.metrics, "calculate")
        assert isinstance(refused, Refusal) and refused.status == 403
        assert refused.event == "authz_denied" and refused.audit["token"] == "metrics"
    assert reason(world.admit(ALICE, "pc_guess")) == "invalid_token"


def test_audited_scopes_wait_for_the_audit_trail_others_do_not(tmp_path: Path) -> None:
    """Fail-closed audit refuses calculate (503) but not metrics, after the scope check."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    keys = AuditKeys.create(tmp_path / "keys")
    audit = Auditor(
        [ChainedFileSink(blocker / "audit.jsonl", keys.service), StdoutSink(io.StringIO())]
    )
    audit.emit("probe", outcome="info")  # the failed write marks the sink unhealthy
    world = World(tmp_path, audit=audit)
    refused = world.admit(ALICE, world.calc, "calculate")
    assert isinstance(refused, Refusal) and (refused.status, refused.reason) == (
        503,
        "audit_unavailable",
    )
    assert refused.event == "calculation_rejected" and refused.retry_after > 0
    assert isinstance(world.admit(ALICE, world.metrics, "metrics"), TokenRecord)
    out_of_scope = world.admit(ALICE, world.metrics, "calculate")
    assert isinstance(out_of_scope, Refusal) and out_of_scope.status == 403


def test_the_token_limit_comes_last_and_boxes_the_token(tmp_path: Path) -> None:
    """A token over its own rate is refused and boxed by hash, from every address."""
    world = World(tmp_path, per_token="2/minute")
    assert isinstance(world.admit(ALICE, world.calc), TokenRecord)
    assert isinstance(world.admit(BOB, world.calc), TokenRecord)
    assert reason(world.admit(ALICE, world.calc)) == "token_rate_limit"
    screened = world.gate.screen(BOB, world.calc)
    assert screened is not None and screened.reason == "token_rate_limit"
    assert screened.event is None  # edge refusals are not audited one by one
    assert world.gate.screen(BOB, world.metrics) is None
    assert isinstance(world.admit(BOB, world.metrics, "metrics"), TokenRecord)


def test_the_screen_costs_nothing_while_the_box_is_empty(tmp_path: Path) -> None:
    """No entry, no refusal, whatever is presented."""
    world = World(tmp_path)
    assert world.gate.screen(ALICE, world.calc) is None
    assert world.gate.screen(ALICE, None) is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("::1", "::/64"),
    ],
)
def test_clients_are_keyed_by_ipv4_address_or_ipv6_64(address: str, key: str) -> None:
    """A host owns a whole IPv6 /64; a mapped IPv4 address is that address (TM-09)."""
    assert client_key(address) == key
