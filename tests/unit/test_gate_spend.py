"""`Gate.spend`: a batch's extra expressions spend the token's rate like requests do (TM-09).

No HTTP: the gate over a real token store, limiter, penalty box and auditor.
"""

from __future__ import annotations

import asyncio
import io

from pingcalc.audit import Auditor, StdoutSink
from pingcalc.auth import TokenRecord, TokenStore
from pingcalc.gate import Client, Gate
from pingcalc.throttle import PenaltyBox, RateLimiter
from pingcalc.throttle.penalty import token_key
from tests_support import Tokens

CLIENT = Client.of("192.0.2.7")


def _gate(tokens: Tokens, per_token: str, *, enabled: bool = True) -> Gate:
    return Gate(
        tokens=TokenStore(tokens.path),
        limiter=RateLimiter(enabled=enabled),
        box=PenaltyBox(),
        audit=Auditor([StdoutSink(io.StringIO())]),
        per_ip="1000/minute",
        auth_failures="1000/minute",
        per_token=per_token,
    )


def _admitted(gate: Gate, tokens: Tokens, name: str) -> TokenRecord:
    decision = asyncio.run(gate.admit(CLIENT, tokens.secrets[name], "calculate"))
    assert isinstance(decision, TokenRecord), decision
    return decision


def test_spend_grants_what_the_budget_holds_and_boxes_the_token_past_it(tokens: Tokens) -> None:
    """5/minute covers the admission and 4 more; the 6th action is refused with Retry-After."""
    gate = _gate(tokens, "5/minute")
    record = _admitted(gate, tokens, "calc")
    assert asyncio.run(gate.spend(record, 3)) == (3, 0)
    granted, retry_after = asyncio.run(gate.spend(record, 4))
    assert granted == 1 and retry_after == 12  # one event of 5/minute refills in 12 s
    # The token is now refused at the edge, like a token over its limit at admission.
    assert gate.box.retry_after(token_key(record.sha256)) > 0
    refusal = gate.screen(CLIENT, tokens.secrets["calc"])
    assert refusal is not None and refusal.reason == "token_rate_limit"


def test_spend_counts_the_same_budget_as_admission(tokens: Tokens) -> None:
    """Spent expressions leave nothing for the next request: admission is then refused."""
    gate = _gate(tokens, "3/minute")
    record = _admitted(gate, tokens, "calc")
    assert asyncio.run(gate.spend(record, 2)) == (2, 0)
    gate.box = PenaltyBox()  # look past the box: the limiter itself must refuse
    decision = asyncio.run(gate.admit(CLIENT, tokens.secrets["calc"], "calculate"))
    assert not isinstance(decision, TokenRecord) and decision.reason == "token_rate_limit"


def test_other_tokens_keep_their_own_budget(tokens: Tokens) -> None:
    """One token spending its budget on a batch does not touch another token's."""
    gate = _gate(tokens, "2/minute")
    record = _admitted(gate, tokens, "calc")
    assert asyncio.run(gate.spend(record, 5)) == (1, 30)
    assert isinstance(_admitted(gate, tokens, "full"), TokenRecord)


def test_spend_of_nothing_or_with_limits_off_grants_everything(tokens: Tokens) -> None:
    """Zero extra costs nothing; with rate limits disabled every expression is granted."""
    gate = _gate(tokens, "1/minute")
    record = _admitted(gate, tokens, "calc")
    assert asyncio.run(gate.spend(record, 0)) == (0, 0)
    unlimited = _gate(tokens, "1/minute", enabled=False)
    assert asyncio.run(unlimited.spend(_admitted(unlimited, tokens, "calc"), 31)) == (31, 0)
