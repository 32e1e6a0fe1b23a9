"""The OpenAPI document tells the truth (issue 26): what ``/schema/openapi.json`` says
of every operation, read from the document the app serves. Whether the API answers as
it says is ``test_contract_run.py``'s (schemathesis against a real server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from api.http import schemas, subscriptions
from api.http.contract import FORMAT_MEDIA_TYPES, PATH_PARAMETER, component_of
from tests.e2e.conftest import PROBLEM, Api

METHODS = ("get", "post", "patch", "put", "delete")
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture
def document(api: Api) -> dict[str, Any]:
    response = api.http.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def test_every_operation_has_a_summary_and_says_who_may_call_it(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        assert operation.get("summary"), (method, path)
        assert "**Who**" in operation.get("description", ""), (method, path)


def test_every_problem_status_is_declared_with_the_one_problem_schema(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {PROBLEM: {"schema": PROBLEM_SCHEMA}}, (path, status)
                assert response["description"], (method, path, status)
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert problem["additionalProperties"] is True  # existing_client_id, looked_up…


def _statuses(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status in operation["responses"]}


def test_the_statuses_follow_from_what_each_route_is(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        answers = _statuses(operation)
        where = (method, path)
        assert 422 in answers, where  # a parameter holding NUL, at least
        if path != "/health/live":  # the one route that touches no database
            assert 503 in answers, where
        if not path.startswith("/health"):
            assert {401, 403} <= answers, where
        if PATH_PARAMETER.search(path):
            assert 404 in answers, where
        if "requestBody" in operation:
            assert {413, 415} <= answers, where
        if method != "GET" and path != "/imports":  # commands
            assert {400, 409} <= answers, where
        honours_if_match = path.startswith(("/clients/{", "/deals/{")) and method != "GET"
        assert (412 in answers) == honours_if_match, where


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("GET", "/funnel", {404}),  # an unknown pipeline
        ("GET", "/clients/lookup", {400, 404}),
        ("GET", "/clients", {400, 429}),  # a bad cursor; the export limit
        ("GET", "/audit", {400, 429}),
        ("GET", "/events", {429}),
        ("GET", "/clients/{client_id}/history", {400, 429}),
        ("GET", "/clients/{client_id}/export", {429}),
        ("GET", "/work-queue", {400, 404}),  # another manager named: 404
        ("POST", "/deals", {404}),  # an unknown client in the body
        ("POST", "/pipelines", {200, 201}),  # redefined, defined
        ("POST", "/imports", {400, 413, 415}),
        ("GET", "/health/ready", {503}),
    ],
)
def test_what_only_the_route_knows_is_declared_too(
    document: dict[str, Any], method: str, path: str, statuses: set[int]
) -> None:
    assert statuses <= _statuses(document["paths"][path][method.lower()])


def test_every_media_type_a_read_answers_in_is_declared(document: dict[str, Any]) -> None:
    def media(path: str) -> set[str]:
        return set(document["paths"][path]["get"]["responses"]["200"]["content"])

    csv, jsonl = FORMAT_MEDIA_TYPES["csv"][0], FORMAT_MEDIA_TYPES["jsonl"][0]
    assert media("/clients") == {"application/json", csv}
    assert media("/audit") == {"application/json", csv, jsonl}
    assert media("/metrics") == {"text/plain; version=0.0.4; charset=utf-8"}
    body = document["paths"]["/imports"]["post"]["requestBody"]["content"]
    assert {"text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"} <= set(
        body
    )


def test_every_parameter_is_described(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if "$ref" not in parameter:
                assert parameter.get("description"), (method, path, parameter["name"])


def test_instants_are_documented_as_instants_or_dates(document: dict[str, Any]) -> None:
    (as_of,) = [
        p for p in document["paths"]["/lifecycle"]["get"]["parameters"] if p.get("name") == "as_of"
    ]
    formats = {option["format"] for option in as_of["schema"]["oneOf"][0]["anyOf"]}
    assert formats == {"date-time", "date"}
    assert "projected" in as_of["description"]


def test_client_attributes_are_an_object_of_texts(document: dict[str, Any]) -> None:
    attributes = document["components"]["schemas"]["RegisterClientBody"]["properties"]["attributes"]
    assert attributes["type"] == "object"
    assert attributes["additionalProperties"] == {"type": "string", "maxLength": 1000}
    assert attributes["maxProperties"] == 100
    assert attributes["default"] == {}


def test_every_request_body_has_examples_the_api_accepts(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            continue
        name = component_of(content["application/json"]["schema"])
        model: type[BaseModel] = getattr(schemas, name, None) or getattr(subscriptions, name)
        examples = content["application/json"].get("examples", {})
        assert examples, (method, path)
        for example in examples.values():
            model.model_validate(example["value"])  # raises if the example is no body
        component = document["components"]["schemas"][model.__name__]
        assert component["additionalProperties"] is False  # an unknown member is a 422


def test_creating_a_record_links_to_what_can_be_done_with_it(document: dict[str, Any]) -> None:
    def links(path: str) -> dict[str, Any]:
        found: dict[str, Any] = document["paths"][path]["post"]["responses"]["201"]["links"]
        return found

    def operation_id(method: str, path: str) -> str:
        return str(document["paths"][path][method]["operationId"])

    registered = links("/clients")
    card = registered[operation_id("get", "/clients/{client_id}")]
    assert card["parameters"] == {"client_id": "$response.body#/id"}
    assert operation_id("patch", "/clients/{client_id}") in registered
    deal = registered[operation_id("post", "/deals")]
    assert deal["requestBody"] == {"client_id": "$response.body#/id"}
    scheduled = links("/clients/{client_id}/follow-ups")
    complete = scheduled[operation_id("post", "/clients/{client_id}/follow-ups/{task_id}/complete")]
    assert complete["parameters"] == {
        "client_id": "$request.path.client_id",
        "task_id": "$response.body#/task_id",
    }


def test_commands_document_idempotency_keys_and_if_match(document: dict[str, Any]) -> None:
    def headers(method: str, path: str) -> set[str]:
        parameters = document["paths"][path][method]["parameters"]
        return {p["$ref"].rpartition("/")[2] for p in parameters if "$ref" in p}

    assert headers("post", "/clients") == {"CorrelationId", "IdempotencyKey"}
    assert headers("post", "/clients/{client_id}/merge") == {
        "CorrelationId",
        "IdempotencyKey",
        "IfMatch",
    }
    assert headers("get", "/clients") == {"CorrelationId"}
