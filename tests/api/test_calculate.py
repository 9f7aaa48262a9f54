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

from fastapi.testclient import TestClient

from pingcalc.app import create_app
from pingcalc.settings import Settings
from tests_support import AuditKeys, Tokens

URL = "/api/v1/calculate"


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


def test_openapi_documents_the_request_and_response(client: TestClient) -> None:
    """The schema shows the JSON body and the result model (clients and fuzzers use it)."""
    document = client.get("/openapi.json").json()
    operation = document["paths"][URL]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["expression"]
    assert schema["additionalProperties"] is False
    assert {"200", "401", "403", "415", "422"} <= set(operation["responses"])


def test_calculations_are_audited(
    make_settings: Callable[..., Settings], tokens: Tokens, tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """Success and refusal each leave an audit record with token, expression and outcome."""
    audit_file = tmp_path / "audit.jsonl"
    settings = make_settings(audit_file=audit_file, audit_key_file=audit_keys.service)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ok = client.post(URL, json={"expression": "6*7"}, headers=tokens.header("calc"))
        bad = client.post(URL, json={"expression": "1/0"}, headers=tokens.header("calc"))
    records: list[dict[str, Any]] = [
        json.loads(line) for line in audit_file.read_text().splitlines()
    ]
    success = [r for r in records if r["event"] == "calculation"]
    rejected = [r for r in records if r["event"] == "calculation_rejected"]
    assert len(success) == 1 and len(rejected) == 1
    assert success[0]["result"] == 42 and success[0]["expression"] == "6*7"
    assert success[0]["request_id"] == ok.headers["x-request-id"]
    assert success[0]["token"] == "calc" and success[0]["outcome"] == "success"
    assert rejected[0]["reason"] == "CalcMathError" and rejected[0]["position"] == 2
    assert rejected[0]["request_id"] == bad.headers["x-request-id"]
