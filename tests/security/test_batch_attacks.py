"""Calculator batches through the real server: no lever for more work than single requests.

TM-09: each expression of a batch spends the token's rate (one admission, then one more hit
per expression); past the budget expressions are answered as 429 items, not evaluated, and
the token is refused at the edge afterwards. TM-08: more than 32 expressions, or more than
8,000 characters in all, are refused before any is evaluated. TM-11: one audit record per
expression.
"""

from __future__ import annotations

from collections.abc import Callable

from tests_support import LiveServer, audit_records

URL = "/api/v1/calculate"


def test_a_batch_cannot_evaluate_more_than_the_token_rate_allows(
    server_factory: Callable[..., LiveServer],
) -> None:
    """With 10/minute, a batch of 32 evaluates 10, answers 22 as 429 items, and the token is
    refused afterwards; each expression leaves one audit record; another token is unaffected."""
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
    assert [r["index"] for r in records] == list(range(32))
    assert [r["event"] for r in records] == ["calculation"] * 10 + ["calculation_rejected"] * 22
    assert {r["reason"] for r in records[10:]} == {"token_rate_limit"}


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
