"""`POST /api/v1/calculate` in process: results, problem shapes, auth, media type, audit.

Threats: unauthenticated or unauthorised use (TM-01: T1190, OWASP A01), code execution
through the expression (TM-05: OWASP A03) and repudiation (audit). Refusals are RFC 9457
problems with the column of the fault.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pingcalc.app import create_app
from pingcalc.settings import Settings
from tests_support import AuditKeys, Tokens, file_records

URL = "/api/v1/calculate"


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    """Where the app of `audited_client` writes its sealed audit trail."""
    return tmp_path / "audit.jsonl"


@pytest.fixture
def audited_client(
    make_settings: Callable[..., Settings], audit_keys: AuditKeys, audit_file: Path
) -> Callable[..., TestClient]:
    """A client, to open with `with`, of the real app auditing to `audit_file`, with the
    settings given as keywords."""

    def build(**overrides: Any) -> TestClient:
        settings = make_settings(**audit_keys.settings(audit_file), **overrides)
        return TestClient(create_app(settings), raise_server_exceptions=False)

    return build


def test_calculate_returns_expression_and_result(client: TestClient, tokens: Tokens) -> None:
    """A legitimate expression gives 200 with the expression and its value."""
    response = client.post(URL, json={"expression": "2*(3+4)"}, headers=tokens.header("calc"))
    assert response.status_code == 200, response.text
    assert response.json() == {"expression": "2*(3+4)", "result": 14}
    floats = client.post(URL, json={"expression": "1/4"}, headers=tokens.header("full"))
    assert floats.json()["result"] == 0.25


def test_large_integer_results_travel_exactly(client: TestClient, tokens: Tokens) -> None:
    """A 4,096-bit result is sent as an exact JSON integer, not a float or a string."""
    response = client.post(URL, json={"expression": "2**4095"}, headers=tokens.header("calc"))
    assert response.status_code == 200
    assert json.loads(response.text)["result"] == 2**4095


def test_rejected_expression_is_422_problem_with_position(
    client: TestClient, tokens: Tokens
) -> None:
    """`(1).__class__` is a 422 problem naming the attribute and its column."""
    response = client.post(URL, json={"expression": "(1).__class__"}, headers=tokens.header("calc"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:pingcalc:problem:calculation-rejected"
    assert body["title"] == "Expression rejected"
    assert body["detail"] == "unsupported syntax `__class__` at column 5"
    assert body["position"] == 5
    assert body["request_id"] == response.headers["x-request-id"]


def test_limit_and_math_errors_are_422_too(client: TestClient, tokens: Tokens) -> None:
    """Integer bombs and division by zero are refusals, not server errors."""
    for expression, detail in (
        ("9**9**9", "result too large (more than 4096 bits) at column 2"),
        ("1/0", "division by zero at column 2"),
        ("", "empty expression"),
    ):
        response = client.post(URL, json={"expression": expression}, headers=tokens.header("calc"))
        assert response.status_code == 422
        assert response.json()["detail"] == detail


def test_missing_token_is_401(client: TestClient) -> None:
    """No bearer token: 401 with a challenge, before the body is looked at."""
    response = client.post(URL, content=b"not json", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_token_without_calculate_scope_is_403(client: TestClient, tokens: Tokens) -> None:
    """The `pinger` token (scope ping only) cannot calculate."""
    response = client.post(URL, json={"expression": "1+1"}, headers=tokens.header("pinger"))
    assert response.status_code == 403
    assert "calculate" in response.json()["detail"]


def test_non_json_content_type_is_415(client: TestClient, tokens: Tokens) -> None:
    """A form, plain text or a missing media type is 415 problem+json."""
    for headers in (
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {},
    ):
        response = client.post(
            URL, content=b'{"expression": "1+1"}', headers={**tokens.header("calc"), **headers}
        )
        assert response.status_code == 415, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:pingcalc:problem:unsupported-media-type"
    charset = client.post(
        URL,
        content=b'{"expression": "1+1"}',
        headers={**tokens.header("calc"), "Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


def test_malformed_bodies_are_422_validation_problems(client: TestClient, tokens: Tokens) -> None:
    """Invalid JSON, a missing or non-string expression and extra fields are refused."""
    bodies: list[bytes] = [
        b"{",
        b"{}",
        b'{"expression": 5}',
        b'{"expression": ["1"]}',
        b'{"expression": null}',
        b'{"expression": "1", "globals": {}}',
        b'"1+1"',
    ]
    for body in bodies:
        response = client.post(
            URL, content=body, headers={**tokens.header("calc"), "Content-Type": "application/json"}
        )
        assert response.status_code == 422, body
        problem = response.json()
        assert problem["type"] == "urn:pingcalc:problem:validation" and problem["detail"]


def _schema(document: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
    return schema


def test_openapi_documents_the_request_and_response(client: TestClient) -> None:
    """The schema shows both body forms and both answers (clients and fuzzers use it)."""
    document = client.get("/openapi.json").json()
    operation = document["paths"][URL]["post"]
    body = _schema(document, operation["requestBody"]["content"]["application/json"]["schema"])
    single, batch = (_schema(document, ref) for ref in body["anyOf"])
    assert single["required"] == ["expression"] and batch["required"] == ["expressions"]
    assert single["additionalProperties"] is False and batch["additionalProperties"] is False
    assert batch["properties"]["expressions"]["maxItems"] == 32
    for form in (single, batch):
        precision = form["properties"]["precision"]["anyOf"][0]
        assert (precision["minimum"], precision["maximum"]) == (1, 17)
    answer = _schema(
        document, operation["responses"]["200"]["content"]["application/json"]["schema"]
    )
    assert {_schema(document, ref)["title"] for ref in answer["anyOf"]} == {
        "CalculateResponse",
        "CalculateBatchResponse",
    }
    assert {"200", "401", "403", "415", "422", "429", "503"} <= set(operation["responses"])
    assert "/static/calc-reference.json" in operation["description"]


# --- batches ----------------------------------------------------------------------------


def test_batch_answers_each_expression_in_order_with_results_and_problems(
    client: TestClient, tokens: Tokens
) -> None:
    """A batch mixes results and per-expression problems, in the order sent, as a 200."""
    expressions = ["1+1", "(1).__class__", "2**10", "1/0", "7/2"]
    response = client.post(URL, json={"expressions": expressions}, headers=tokens.header("calc"))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [item["expression"] for item in results] == expressions
    assert [item.get("result") for item in results] == [2, None, 1024, None, 3.5]
    syntax, math = results[1]["error"], results[3]["error"]
    assert syntax["type"] == "urn:pingcalc:problem:calculation-rejected"
    assert (syntax["status"], syntax["position"]) == (422, 5)
    assert syntax["detail"] == "unsupported syntax `__class__` at column 5"
    assert (math["detail"], math["position"]) == ("division by zero at column 2", 2)
    assert "retry-after" not in response.headers


def test_batch_of_33_expressions_or_too_many_characters_is_refused(
    client: TestClient, tokens: Tokens
) -> None:
    """At most 32 expressions and 8,000 characters per batch (T1499); 32 short ones pass."""
    headers = tokens.header("calc")
    assert client.post(URL, json={"expressions": ["1"] * 32}, headers=headers).status_code == 200
    too_many = client.post(URL, json={"expressions": ["1"] * 33}, headers=headers)
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "expressions"
    assert "at most 32" in too_many.json()["detail"]
    long = ["1" + "+1" * 499] * 9  # 9 x 999 characters, each under the 1,000 bound
    too_long = client.post(URL, json={"expressions": long}, headers=headers)
    assert too_long.status_code == 422
    assert "at most 8000 characters in all" in too_long.json()["detail"]
    assert client.post(URL, json={"expressions": long[:8]}, headers=headers).status_code == 200


def test_a_body_needs_exactly_one_of_expression_and_expressions(
    client: TestClient, tokens: Tokens
) -> None:
    """Both forms at once, an empty or non-string batch, and neither form are 422 problems."""
    headers = tokens.header("calc")
    both = client.post(URL, json={"expression": "1", "expressions": ["2"]}, headers=headers)
    assert both.status_code == 422
    assert both.json()["detail"] == "give either `expression` or `expressions`, not both"
    invalid: list[dict[str, object]] = [
        {},
        {"expressions": []},
        {"expressions": [1]},
        {"expressions": "1+1"},
    ]
    for body in invalid:
        response = client.post(URL, json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.json()["type"] == "urn:pingcalc:problem:validation"
    extra = client.post(URL, json={"expressions": ["1"], "globals": {}}, headers=headers)
    assert extra.status_code == 422 and "globals" in extra.json()["detail"]


def test_each_expression_of_a_batch_counts_against_the_token_rate(
    make_settings: Callable[..., Settings], tokens: Tokens
) -> None:
    """TM-09: with 5/minute, a batch of 8 evaluates 5 and answers the rest as 429 items."""
    settings = make_settings(rate_limit_per_token="5/minute", penalty_delay_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        batch = client.post(
            URL, json={"expressions": [f"{n}*2" for n in range(8)]}, headers=tokens.header("calc")
        )
        assert batch.status_code == 200
        results = batch.json()["results"]
        assert [item.get("result") for item in results[:5]] == [0, 2, 4, 6, 8]
        refused = [item["error"] for item in results[5:]]
        assert [e["status"] for e in refused] == [429, 429, 429]
        assert all(e["type"] == "urn:pingcalc:problem:rate-limited" for e in refused)
        assert batch.headers["retry-after"] == str(refused[0]["retry_after"]) == "12"
        # The budget is spent: the token's next request is refused before any work.
        after = client.post(URL, json={"expression": "1+1"}, headers=tokens.header("calc"))
        assert after.status_code == 429
        # Another token is not affected.
        other = client.post(URL, json={"expression": "1+1"}, headers=tokens.header("full"))
        assert other.status_code == 200


def test_each_expression_of_a_batch_is_audited(
    audited_client: Callable[..., TestClient], audit_file: Path, tokens: Tokens
) -> None:
    """One record per evaluated expression, in order, with its index and the request's id
    (repudiation), and one for the items refused by the token's rate limit."""
    with audited_client(rate_limit_per_token="3/minute") as client:
        response = client.post(
            URL,
            json={"expressions": ["6*7", "1/0", "2/3", "1+1"], "precision": 2},
            headers=tokens.header("calc"),
        )
    assert response.status_code == 200
    records = file_records(audit_file)
    batch = [r for r in records if r.get("request_id") == response.headers["x-request-id"]]
    assert [(r["event"], r.get("index"), r.get("expression")) for r in batch] == [
        ("calculation", 0, "6*7"),
        ("calculation_rejected", 1, "1/0"),
        ("calculation", 2, "2/3"),
        ("calculation_rejected", None, None),
    ]
    assert (batch[0]["result"], batch[2]["result"], batch[2]["precision"]) == (42, 0.67, 2)
    assert (batch[1]["reason"], batch[3]["reason"]) == ("CalcMathError", "token_rate_limit")
    assert (batch[3]["refused"], batch[3]["first_index"], batch[3]["last_index"]) == (1, 3, 3)
    assert all(r["token"] == "calc" for r in batch)


def test_batch_is_refused_whole_when_its_records_cannot_be_written(
    audited_client: Callable[..., TestClient], audit_file: Path, tokens: Tokens
) -> None:
    """Fail-closed: a batch whose audit records fail gets 503, never unrecorded results."""
    with audited_client() as client:
        assert (
            client.post(URL, json={"expressions": ["1"]}, headers=tokens.header("calc")).status_code
            == 200
        )
        audit_file.unlink()
        audit_file.mkdir()  # every later write fails (EISDIR) until the operator fixes it
        response = client.post(URL, json={"expressions": ["1", "2"]}, headers=tokens.header("calc"))
    assert response.status_code == 503
    assert response.json()["type"] == "urn:pingcalc:problem:audit-unavailable"
    assert "results" not in response.text


# --- precision --------------------------------------------------------------------------


def test_precision_rounds_floats_for_display_and_never_integers(
    client: TestClient, tokens: Tokens
) -> None:
    """`precision` gives a float of that many significant digits; ints stay exact."""
    headers = tokens.header("calc")

    def result(expression: str, precision: int) -> Any:
        body = {"expression": expression, "precision": precision}
        response = client.post(URL, json=body, headers=headers)
        assert response.status_code == 200, response.text
        return json.loads(response.text)["result"]

    assert result("2/3", 3) == 0.667 and isinstance(result("2/3", 3), float)
    assert result("2/3", 1) == 0.7
    assert result("2/3", 17) == 2 / 3
    assert result("123456789 * 1000", 1) == 123456789000  # an int is never rounded
    assert result("2**100", 3) == 2**100
    assert result("1e300 * 1.5", 2) == 1.5e300
    batch = client.post(
        URL, json={"expressions": ["1/3", "10//3"], "precision": 2}, headers=headers
    )
    assert [item["result"] for item in batch.json()["results"]] == [0.33, 3]


def test_precision_outside_1_to_17_is_refused(client: TestClient, tokens: Tokens) -> None:
    """0, 18, a string, a float or a boolean precision is a 422 naming the field."""
    headers = tokens.header("calc")
    for precision in (0, 18, -1, "3", 3.0, True):
        for body in (
            {"expression": "1/3", "precision": precision},
            {"expressions": ["1/3"], "precision": precision},
        ):
            response = client.post(URL, json=body, headers=headers)
            assert response.status_code == 422, body
            assert response.json()["errors"][0]["field"] == "precision", body


def test_calculations_are_audited(
    audited_client: Callable[..., TestClient], audit_file: Path, tokens: Tokens
) -> None:
    """Success and refusal each leave an audit record with token, expression and outcome."""
    with audited_client() as client:
        ok = client.post(URL, json={"expression": "6*7"}, headers=tokens.header("calc"))
        bad = client.post(URL, json={"expression": "1/0"}, headers=tokens.header("calc"))
    records = file_records(audit_file)
    success = [r for r in records if r["event"] == "calculation"]
    rejected = [r for r in records if r["event"] == "calculation_rejected"]
    assert len(success) == 1 and len(rejected) == 1
    assert success[0]["result"] == 42 and success[0]["expression"] == "6*7"
    assert success[0]["request_id"] == ok.headers["x-request-id"]
    assert success[0]["token"] == "calc" and success[0]["outcome"] == "success"
    assert rejected[0]["reason"] == "CalcMathError" and rejected[0]["position"] == 2
    assert rejected[0]["request_id"] == bad.headers["x-request-id"]
