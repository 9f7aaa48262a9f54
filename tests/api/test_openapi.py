"""The OpenAPI document says what the server does: every route documented, every answer the
server gives for a class of input listed with its media type (TM-20).

schemathesis (tests/security/test_fuzz_openapi.py) fuzzes the document; these tests provoke
each documented refusal on purpose and compare the answer with the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pingcalc.app import create_app
from pingcalc.settings import Settings
from tests_support import Tokens

SAMPLES: dict[str, dict[str, Any]] = {
    "/api/v1/calculate": {"expression": "6*7"},
    "/api/v1/ping": {"target": "127.0.0.1", "count": 1},
}


@pytest.fixture
def tight(settings: Settings) -> Iterator[TestClient]:
    """The app with a per-token budget of 3 a minute, so a 429 is easy to provoke."""
    app = create_app(settings.model_copy(update={"rate_limit_per_token": "3/minute"}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def assert_documented(operation: dict[str, Any], response: Any) -> None:
    """`response`'s status is among the operation's answers, with the documented media type."""
    status = str(response.status_code)
    assert status in operation["responses"], (operation["operationId"], status, response.text)
    documented = operation["responses"][status].get("content", {})
    media_type = response.headers["content-type"].split(";")[0]
    assert any(kind.split(";")[0] == media_type for kind in documented), (status, media_type)


def test_every_route_is_documented_and_every_documented_route_is_served(
    client: TestClient,
) -> None:
    """No undocumented operation, and no documented one that answers 404 or 405."""
    document = _document(client)
    operations = _operations(document)
    assert {(path, method) for path, method, _ in operations} == {
        ("/healthz", "GET"),
        ("/readyz", "GET"),
        ("/api/v1/calculate", "POST"),
        ("/api/v1/ping", "POST"),
        ("/metrics", "GET"),
    }
    for path, method, _ in operations:
        answer = client.request(method, path)
        assert answer.status_code not in (404, 405), (method, path)


def test_protected_operations_document_their_scope_and_every_refusal(
    client: TestClient, tokens: Tokens
) -> None:
    """401 without a token, 403 with the wrong scope, 415 and 422 for bad bodies: each is an
    answer the document lists, as a problem document."""
    document = _document(client)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, method, operation in _operations(document):
        if "security" not in operation:
            assert_documented(operation, client.request(method, path))
            continue
        (scope,) = operation["security"][0]["bearer"]
        assert_documented(operation, client.request(method, path))  # 401
        other = "calc" if scope != "calculate" else "pinger"
        wrong = client.request(method, path, headers=tokens.header(other))
        assert wrong.status_code == 403
        assert_documented(operation, wrong)
        if "requestBody" not in operation:
            assert_documented(
                operation, client.request(method, path, headers=tokens.header("full"))
            )
            continue
        full = tokens.header("full")
        for content, kind in (
            (b"x=1", "text/plain"),
            (b"{", "application/json"),
            (b"[]", "application/json"),
        ):
            answer = client.request(
                method, path, content=content, headers={**full, "Content-Type": kind}
            )
            assert answer.status_code in (415, 422), answer.text
            assert_documented(operation, answer)
        assert_documented(operation, client.request(method, path, json=SAMPLES[path], headers=full))


def test_rate_limited_answers_are_documented(tight: TestClient, tokens: Tokens) -> None:
    """429 with Retry-After is a documented answer of every protected operation."""
    document = _document(tight)
    operation = document["paths"]["/api/v1/calculate"]["post"]
    answers = [
        tight.post(
            "/api/v1/calculate", json=SAMPLES["/api/v1/calculate"], headers=tokens.header("calc")
        )
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert_documented(operation, answers[-1])
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_the_request_and_response_models_match_the_answers(
    client: TestClient, tokens: Tokens
) -> None:
    """The 200 body has exactly the documented properties (of one of the documented forms:
    one expression or a batch); the problem schema's required fields are in every problem."""
    document = _document(client)
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/api/v1/calculate"]["post"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    model = schemas[ref.rsplit("/", 1)[1]]
    forms = [schemas[r["$ref"].rsplit("/", 1)[1]] for r in model.get("anyOf", [])] or [model]
    for body in (SAMPLES["/api/v1/calculate"], {"expressions": ["6*7", "1/0"]}):
        ok = client.post("/api/v1/calculate", json=body, headers=tokens.header("calc")).json()
        assert any(
            set(ok) <= set(form["properties"]) and set(form["required"]) <= set(ok)
            for form in forms
        ), (body, ok)
    problem_ref = operation["responses"]["401"]["content"]["application/problem+json"]["schema"]
    problem = schemas[problem_ref["$ref"].rsplit("/", 1)[1]]
    refused = client.post("/api/v1/calculate", json=SAMPLES["/api/v1/calculate"]).json()
    assert set(problem["required"]) <= set(refused)
