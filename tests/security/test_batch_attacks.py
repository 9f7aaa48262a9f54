"""Calculator batches through the real server: no lever for more work than single requests.

TM-09: each expression of a batch spends the token's rate (one admission, then one more hit
per expression); past the budget expressions are answered as 429 items, not evaluated, and
the token is refused at the edge afterwards. TM-08: more than 32 expressions, or more than
8,000 characters in all, are refused before any is evaluated. TM-11: one audit record per
evaluated expression and one for the refused tail, so a batch over budget writes no more
records than the single requests it stands for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests_support import LiveServer, audit_records

URL = "/api/v1/calculate"


def test_a_batch_cannot_evaluate_more_than_the_token_rate_allows(
    server_factory: Callable[..., LiveServer],
) -> None:
    """With 10/minute, a batch of 32 evaluates 10, answers 22 as 429 items, and the token is
    refused afterwards; each evaluated expression leaves one audit record and the 22 refused
    ones a single record; another token is unaffected."""
    server = server_factory(
        env={"PINGCALC_RATE_LIMIT_PER_TOKEN": "10/minute", "PINGCALC_PENALTY_DELAY_SECONDS": "0"}
    )
    expressions = [f"{n} * 3" for n in range(32)]
    with server.client("calc") as client:
        response = client.post(URL, json={"expressions": expressions})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [item["expression"] for item in results] == expressions
        assert [item["result"] for item in results[:10]] == [n * 3 for n in range(10)]
        assert all(item["error"]["status"] == 429 for item in results[10:])
        assert int(response.headers["retry-after"]) >= 1
        after = client.post(URL, json={"expression": "1 + 1"})
        assert after.status_code == 429 and "retry-after" in after.headers
    with server.client("full") as other:
        assert other.post(URL, json={"expression": "1 + 1"}).json()["result"] == 2
    request_id = response.headers["x-request-id"]
    records = [r for r in audit_records(server.log_text()) if r["request_id"] == request_id]
    assert [r["event"] for r in records] == ["calculation"] * 10 + ["calculation_rejected"]
    assert [r["index"] for r in records[:10]] == list(range(10))
    tail = records[10]
    assert (tail["reason"], tail["refused"], tail["first_index"], tail["last_index"]) == (
        "token_rate_limit",
        22,
        10,
        31,
    )
    assert tail["retry_after"] == int(response.headers["retry-after"])


def test_batches_over_budget_write_one_record_each_for_their_refused_items(
    server_factory: Callable[..., LiveServer],
) -> None:
    """TM-11, TM-09: a token that keeps sending full batches once over its budget (the audit
    amplification attack) leaves one record per evaluation plus one per batch, not 32."""
    server = server_factory(
        env={"PINGCALC_RATE_LIMIT_PER_TOKEN": "60/minute", "PINGCALC_PENALTY_DELAY_SECONDS": "0"}
    )
    expressions = [f"{n} + 1" for n in range(32)]
    admitted: list[httpx.Response] = []
    with server.client("calc") as client:
        for _ in range(40):  # bounded: about 3 s of refills at one expression a second
            response = client.post(URL, json={"expressions": expressions})
            if response.status_code == 200:
                admitted.append(response)
            if len(admitted) == 3:
                break
            time.sleep(float(response.headers.get("retry-after", "0.1")))
    assert len(admitted) == 3
    records = audit_records(server.log_text())
    for response in admitted:
        results = response.json()["results"]
        evaluated = sum("result" in item for item in results)
        mine = [r for r in records if r["request_id"] == response.headers["x-request-id"]]
        assert evaluated >= 1 and len(mine) == evaluated + (evaluated < 32)
        if evaluated < 32:
            assert mine[-1]["refused"] == 32 - evaluated
    assert sum("result" in item for item in admitted[-1].json()["results"]) < 32


def test_oversized_batches_are_refused_before_any_evaluation(
    server_factory: Callable[..., LiveServer],
) -> None:
    """33 expressions, or 9 of 999 characters (8,991 in all), are a 422; nothing is evaluated."""
    server = server_factory()
    long = "1" + "+1" * 499
    with server.client("calc") as client:
        for body in ({"expressions": ["2 ** 10"] * 33}, {"expressions": [long] * 9}):
            response = client.post(URL, json=body)
            assert response.status_code == 422
            assert response.json()["errors"][0]["field"] == "expressions"
        fits = client.post(URL, json={"expressions": ["2 ** 10"] * 32})
        assert fits.status_code == 200 and len(fits.json()["results"]) == 32
    evaluated = [r for r in audit_records(server.log_text()) if r["event"] == "calculation"]
    assert len(evaluated) == 32 and {r["request_id"] for r in evaluated} == {
        fits.headers["x-request-id"]
    }
