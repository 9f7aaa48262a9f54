"""The calculator attack corpus, through the engine and through a real server.

Threats: code execution through the expression (TM-05: T1059.006, OWASP A03, CWE-95) and
denial of service through expensive expressions (TM-08: T1499, CWE-400). Every payload of
`calc_attacks.json` (sandbox escapes, format strings, lambdas, comprehensions, Unicode
look-alikes, integer bombs, deep nesting, long inputs, control characters) must be refused
by the engine with the expected error type, within milliseconds and a few MB; and by a
real `pingcalc serve` with a problem+json 4xx, never a 5xx, while a legitimate request
right after still gets its answer.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pingcalc.calc as calc
from pingcalc.calc import CalcError, evaluate
from tests_support import LiveServer

CORPUS_FILE = Path(__file__).with_name("calc_attacks.json")


def _load() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(CORPUS_FILE.read_text(encoding="utf-8"))["attacks"]
    for entry in entries:
        entry["expression"] = (
            entry.get("prefix", "")
            + entry["payload"] * entry.get("repeat", 1)
            + entry.get("suffix", "")
        )
    return entries


ATTACKS = _load()


def _id(entry: dict[str, Any]) -> str:
    return f"{entry['category']}:{entry['expression'][:32]!a}"


def test_corpus_is_large_distinct_and_covers_every_category() -> None:
    """At least 60 distinct payloads, in every category the issue names."""
    expressions = [entry["expression"] for entry in ATTACKS]
    assert len(expressions) >= 60 and len(set(expressions)) == len(expressions)
    categories = {entry["category"] for entry in ATTACKS}
    assert {
        "dunder",
        "builtin",
        "format-string",
        "lambda",
        "comprehension",
        "unicode",
    } <= categories
    assert {"int-bomb", "nesting", "long", "control"} <= categories


@pytest.mark.parametrize("entry", ATTACKS, ids=_id)
def test_engine_refuses_attack_quickly_and_in_little_memory(entry: dict[str, Any]) -> None:
    """The engine raises the expected CalcError within 50 ms and 5 MB of allocations."""
    expected: type[CalcError] = getattr(calc, entry["expect"])
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(expected) as caught:
            evaluate(entry["expression"])
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.message
    assert elapsed < 0.05, f"took {elapsed * 1000:.1f} ms"
    assert peak < 5 * 1024 * 1024, f"allocated {peak} bytes"
    # The message never echoes a control or non-ASCII character (no injection through it).
    assert str(caught.value).isascii() and str(caught.value).isprintable()


@pytest.fixture(scope="module")
def corpus_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """One real server for the whole corpus, with rate limits high enough for ~250 requests."""
    from tests_support import Tokens, start_server

    directory = tmp_path_factory.mktemp("calc-attacks")
    tokens = Tokens(directory / "tokens.json")
    tokens.add("calc", "calculate")
    server = start_server(
        tokens,
        directory / "server.log",
        env={
            "PINGCALC_RATE_LIMIT_PER_TOKEN": "100000/minute",
            "PINGCALC_RATE_LIMIT_PER_IP": "100000/minute",
        },
    )
    try:
        yield server
    finally:
        server.stop()


def _post(server: LiveServer, expression: str) -> Any:
    # Encoded here (ASCII escapes) so that even a lone surrogate reaches the server.
    with server.client("calc") as client:
        return client.post(
            "/api/v1/calculate",
            content=json.dumps({"expression": expression}).encode(),
            headers={"Content-Type": "application/json"},
        )


@pytest.mark.parametrize("entry", ATTACKS, ids=_id)
def test_server_refuses_attack_with_4xx_and_then_still_answers(
    entry: dict[str, Any], corpus_server: LiveServer
) -> None:
    """A problem+json 413/422, never 5xx, and `2*(3+4)` right after still gives 14."""
    started = time.perf_counter()
    response = _post(corpus_server, entry["expression"])
    assert time.perf_counter() - started < 2
    assert response.status_code in (413, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == response.status_code and problem["detail"]
    if response.status_code == 422 and problem["type"].endswith("calculation-rejected"):
        assert "position" in problem
    legitimate = _post(corpus_server, "2*(3+4)")
    assert legitimate.status_code == 200 and legitimate.json()["result"] == 14


def test_server_survived_the_corpus_without_internal_errors(corpus_server: LiveServer) -> None:
    """After the whole corpus the process is alive and logged no unhandled exception."""
    for entry in ATTACKS[:5]:
        assert _post(corpus_server, entry["expression"]).status_code in (413, 422)
    assert corpus_server.process.poll() is None
    log = corpus_server.log_text()
    assert "unhandled_exception" not in log
    assert '"status":500' not in log


def test_rejection_is_audited_with_truncated_escaped_expression(
    server_factory: Callable[..., LiveServer],
) -> None:
    """A refusal leaves `calculation_rejected`; the logged text is bounded and escaped."""
    server = server_factory(env={"PINGCALC_AUDIT_EXPRESSION_MAX": "20"})
    hostile = "__import__('os')\n" + "x" * 500
    assert _post(server, hostile).status_code == 422
    assert _post(server, "2*(3+4)").json()["result"] == 14
    records = [
        json.loads(line)
        for line in server.log_text().splitlines()
        if line.startswith("{") and '"calculation' in line
    ]
    rejected = [r for r in records if r.get("event") == "calculation_rejected"]
    # Escaped first, then cut on a whole escape to the bound: no raw control character, and
    # never longer than the bound however the text escapes.
    assert rejected and rejected[0]["expression"] == "__import__('os')..."
    hostile_escapes = _post(server, "\u202e" * 30)
    assert hostile_escapes.status_code == 422
    records = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    clipped = [r["expression"] for r in records if r.get("event") == "calculation_rejected"]
    assert all(len(text) <= 20 and text.isascii() and text.isprintable() for text in clipped)
    assert rejected[0]["outcome"] == "rejected" and rejected[0]["token"] == "calc"
    assert any(r.get("event") == "calculation" and r.get("result") == 14 for r in records)
